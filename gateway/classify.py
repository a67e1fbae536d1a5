"""What the gateway does with one received node message. Pure: bytes in, spool rows out.

Every message is spooled and forwarded -- the gateway never drops one for being invalid:

* a valid message travels verbatim;
* a message the shared decoder rejects as a whole (bad JSON, unknown version, node mismatch, ...)
  or in part (out-of-range or unknown metrics, bad timestamps) also travels verbatim, so central
  ingest decodes exactly the same bytes and records the same reasons in its rejects table; the
  gateway additionally keeps a local dead letter (reason, detail, raw payload), visible at the farm
  even while the uplink is down;
* a message that *cannot* travel verbatim (payload not UTF-8, a topic whose node id is invalid,
  larger than the protocol's limit) travels as an ``invalid`` envelope entry with the gateway's
  reason and the raw bytes (base64, truncated to :data:`MAX_FORWARDED_RAW`), and is a local dead
  letter too (raw truncated to :data:`MAX_DEAD_LETTER_RAW`).

Only the valid readings are returned for local rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.spool import DeadLetter, Entry
from kernel.protocol import MAX_PAYLOAD_BYTES, Limits, ProtocolError, Reading, decode_up, parse_topic

MAX_FORWARDED_RAW = 2048  # raw bytes of an invalid entry: base64 of it stays under ingest's 4 KiB cut
MAX_DEAD_LETTER_RAW = MAX_PAYLOAD_BYTES


@dataclass(slots=True)
class Classified:
    entry: Entry
    dead: DeadLetter | None = None
    readings: list[Reading] = field(default_factory=list)


def _topic_node(topic: str) -> str:
    parts = topic.split("/")
    return parts[3][:64] if len(parts) == 5 else "?"


def classify(farm: str, topic: str, payload: bytes, received: float, limits: Limits) -> Classified:
    """Decide how one message received on ``topic`` is spooled, dead-lettered and used by rules."""
    node = _topic_node(topic)

    def cannot_travel(reason: str, detail: str) -> Classified:
        why = f"{reason}: {detail}"
        return Classified(
            Entry(received, node, payload[:MAX_FORWARDED_RAW], invalid=why),
            DeadLetter(received, topic, node, reason, detail, True, payload[:MAX_DEAD_LETTER_RAW]),
        )

    try:
        t = parse_topic(topic)
    except ProtocolError as exc:
        return cannot_travel(exc.reason, exc.detail)
    if t.kind != "up" or t.farm != farm:
        return cannot_travel("bad_topic", f"not a node uplink of farm {farm!r}: {topic[:120]!r}")
    node = t.source
    if len(payload) > MAX_PAYLOAD_BYTES:
        return cannot_travel("too_large", f"{len(payload)} bytes > limit {MAX_PAYLOAD_BYTES}")
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        return cannot_travel("bad_encoding", f"not UTF-8 at byte {exc.start}")

    entry = Entry(received, node, payload)
    try:
        msg = decode_up(farm, node, payload, limits)
    except ProtocolError as exc:
        return Classified(entry, DeadLetter(received, topic, node, exc.reason, exc.detail, True, payload))
    except Exception as exc:  # a decoder bug costs a dead letter, never the message or the process
        detail = f"internal decoder error: {exc!r}"[:300]
        return Classified(entry, DeadLetter(received, topic, node, "decode_error", detail, True, payload))
    dead = None
    if msg.rejected:
        first = msg.rejected[0]
        reasons = sorted({r.reason for r in msg.rejected})
        detail = (
            f"{len(msg.rejected)} of {len(msg.rejected) + len(msg.readings)} readings rejected "
            f"({', '.join(reasons)}); first: {first.detail}"
        )
        dead = DeadLetter(received, topic, node, first.reason, detail[:500], False, payload)
    return Classified(entry, dead, msg.readings)
