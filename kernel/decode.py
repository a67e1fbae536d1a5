"""From one received MQTT message to validated node messages and dead letters. Pure: no I/O.

Both topic kinds end up in the same shape: a node message on ``.../up`` is one
:class:`Accepted`; a gateway envelope on ``.../gw/{gw}/batch`` is one per node payload it carries.
Everything unusable becomes a :class:`Reject` with a stable reason, a detail and the raw bytes.
No input raises: this function is fuzzed (``tests/ingest/test_fuzz.py``).

Every reject carries a ``key`` derived only from the message bytes (and the reading's position in
it), so a redelivered message -- or the same node payload arriving directly and via a gateway --
produces the same keys and the database keeps one dead letter.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from kernel.catalog import CATALOG, Metric
from kernel.log import event, get_logger
from kernel.protocol import (
    Limits,
    NodeMessage,
    ProtocolError,
    RejectedReading,
    decode_batch,
    decode_up,
    parse_topic,
    short,
)

log = get_logger("ingest")

MAX_RAW_READING = 4096  # bytes of a rejected reading's JSON kept in the dead letter


@dataclass(slots=True)
class Reject:
    source: str  # MQTT topic
    reason: str
    detail: str
    farm: str | None
    node: str | None
    metric: str | None
    t: float | None
    raw: bytes
    key: bytes


@dataclass(slots=True)
class Accepted:
    """A usable node message (it may still hold per-reading rejects in ``msg.rejected``)."""

    source: str
    msg: NodeMessage
    raw: bytes  # verbatim node payload
    key: bytes  # message key, see :func:`message_key`

    def reading_rejects(self) -> list[Reject]:
        return [_reading_reject(self, i, r) for i, r in enumerate(self.msg.rejected)]

    def as_reject(self, reason: str, detail: str) -> Reject:
        """The whole message as one dead letter (e.g. its node is not registered)."""
        m = self.msg
        return Reject(self.source, reason, detail, m.farm, m.node, None, None, self.raw, self.key + b"m")


@dataclass(slots=True)
class Decoded:
    """Everything one MQTT message yielded."""

    topic: str
    accepted: list[Accepted] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)  # whole-message rejects
    batch_id: str | None = None

    @property
    def n_readings(self) -> int:
        return sum(len(a.msg.readings) for a in self.accepted)


def message_key(farm: str, node: str, payload: bytes) -> bytes:
    """Identity of a node payload, the same whichever path (direct, gateway) it took."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{farm}/{node}\0".encode())
    h.update(payload)
    return h.digest()


def _topic_key(topic: str, payload: bytes) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    h.update(topic.encode("utf-8", "surrogatepass") + b"\0")
    h.update(payload)
    return h.digest() + b"t"


def _reading_raw(r: RejectedReading) -> bytes:
    if r.metric is None:  # a malformed sample: keep it as it came
        obj: object = r.value
    else:
        obj = {"t": r.t, "m": {r.metric: r.value}}
    try:
        raw = json.dumps(obj, ensure_ascii=True, separators=(",", ":"), allow_nan=True)
    except (ValueError, TypeError, RecursionError):
        raw = short(obj)
    return raw.encode("ascii", "backslashreplace")[:MAX_RAW_READING]


def _reading_reject(a: Accepted, i: int, r: RejectedReading) -> Reject:
    m = a.msg
    return Reject(
        a.source,
        r.reason,
        r.detail,
        m.farm,
        m.node,
        r.metric,
        r.t,
        _reading_raw(r),
        a.key + i.to_bytes(4, "big"),
    )


def decode_message(
    topic: str, payload: bytes, limits: Limits, catalog: Mapping[str, Metric] = CATALOG
) -> Decoded:
    """Decode and validate one MQTT message; never raises."""
    out = Decoded(topic)
    try:
        _decode(out, topic, payload, limits, catalog)
    except ProtocolError as exc:
        out.rejects.append(_whole(topic, payload, exc.reason, exc.detail))
    except Exception as exc:  # a decoder bug must cost one dead letter, not the process
        event(log, "decode_bug", logging.ERROR, topic=topic[:200], error=repr(exc)[:300])
        out.accepted.clear()
        out.rejects.clear()
        out.rejects.append(_whole(topic, payload, "decode_error", f"internal decoder error: {exc!r}"[:300]))
    return out


def _whole(topic: str, payload: bytes, reason: str, detail: str) -> Reject:
    farm = node = None
    try:
        t = parse_topic(topic)
        farm = t.farm
        node = t.source if t.kind == "up" else None
    except ProtocolError:
        pass
    return Reject(topic, reason, detail, farm, node, None, None, payload, _topic_key(topic, payload))


def _decode(out: Decoded, topic: str, payload: bytes, limits: Limits, catalog: Mapping[str, Metric]) -> None:
    t = parse_topic(topic)
    if t.kind == "up":
        key = message_key(t.farm, t.source, payload)
        try:
            msg = decode_up(t.farm, t.source, payload, limits, catalog)
        except ProtocolError as exc:
            out.rejects.append(
                Reject(topic, exc.reason, exc.detail, t.farm, t.source, None, None, payload, key + b"m")
            )
            return
        out.accepted.append(Accepted(topic, msg, payload, key))
        return
    if t.kind != "batch":
        raise ProtocolError("bad_topic", f"ingest does not consume {t.kind} topics")
    batch = decode_batch(t.farm, t.source, payload)
    out.batch_id = batch.batch_id
    for i, bad in enumerate(batch.invalid):
        key = _topic_key(topic, payload) + i.to_bytes(4, "big")
        out.rejects.append(Reject(topic, bad.reason, bad.detail, t.farm, bad.node, None, None, bad.raw, key))
    for node, p in batch.messages:
        key = message_key(t.farm, node, p)
        try:
            msg = decode_up(t.farm, node, p, limits, catalog)
        except ProtocolError as exc:
            out.rejects.append(Reject(topic, exc.reason, exc.detail, t.farm, node, None, None, p, key + b"m"))
            continue
        out.accepted.append(Accepted(topic, msg, p, key))
