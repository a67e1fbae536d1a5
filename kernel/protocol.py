"""Wire contract, version 1: topics, node messages and gateway batch envelopes.

Pure functions from bytes to values (no I/O). The gateway and ingest call the same decoder, so a
message accepted at the farm is accepted centrally and a rejected reading carries the same reason
everywhere. See ``docs/protocol.md`` for the format with examples.

Node message (``agri/v1/{farm}/{node}/up``, QoS 1)::

    {"v":1,"node":"n-0012","seq":1234,"boot":7,
     "s":[{"t":1764201600,"m":{"air_t":21.5,"air_rh":65.2}}],"bat":3.91,"rssi":-71,"drop":0}

Gateway batch (``agri/v1/{farm}/gw/{gateway}/batch``, QoS 1): zlib-compressed JSON
``{"v":1,"gw":..,"farm":..,"batch":..,"msgs":[{"node":..,"p":"<node payload text>"}]}``;
the node payload travels verbatim so ingest decodes and dead-letters exactly what the node sent.
"""

from __future__ import annotations

import base64
import json
import math
import re
import reprlib
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import AfterValidator

from kernel.catalog import CATALOG, Metric

VERSION = 1
ROOT = "agri/v1"
ID_PATTERN = r"[a-z0-9-]{1,32}"
ID_REGEX = f"^{ID_PATTERN}$"  # the same rule where only a pattern can be given (OpenAPI query parameters)
_ID_RE = re.compile(ID_PATTERN + r"\Z")
RESERVED_NODE_IDS = frozenset({"gw"})
MAX_PAYLOAD_BYTES = 256 * 1024  # one node message (a long backlog is split by the node)
MAX_BATCH_BYTES = 4 * 1024 * 1024  # one gateway envelope, compressed
MAX_BATCH_INFLATED = 32 * 1024 * 1024
MAX_SEQ = 2**53
MAX_INVALID_B64 = 8192  # base64 of an invalid entry's raw bytes (gateways send at most 2 KiB raw)

TopicKind = Literal["up", "status", "config", "batch", "health"]


class ProtocolError(ValueError):
    """A whole message is unusable. ``reason`` is a stable short code, ``detail`` says why."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def valid_id(s: str) -> bool:
    return bool(_ID_RE.match(s))


def check_id(kind: str, s: str) -> str:
    """Return ``s`` if it is a valid farm/node/gateway id, else raise ``ValueError``."""
    if not isinstance(s, str) or not valid_id(s):
        raise ValueError(f"{kind} id {s!r} must match {ID_PATTERN} (lowercase letters, digits, '-')")
    if kind == "node" and s in RESERVED_NODE_IDS:
        raise ValueError(f"node id {s!r} is reserved")
    return s


# The id types for pydantic models (settings, config files, rules, API bodies): one rule everywhere.
FarmId = Annotated[str, AfterValidator(lambda v: check_id("farm", v))]
NodeId = Annotated[str, AfterValidator(lambda v: check_id("node", v))]
GatewayId = Annotated[str, AfterValidator(lambda v: check_id("gateway", v))]


# --- topics -----------------------------------------------------------------------------------


def up_topic(farm: str, node: str) -> str:
    return f"{ROOT}/{farm}/{node}/up"


def status_topic(farm: str, node: str) -> str:
    return f"{ROOT}/{farm}/{node}/status"


def config_topic(farm: str, node: str) -> str:
    return f"{ROOT}/{farm}/{node}/config"


def batch_topic(farm: str, gateway: str) -> str:
    return f"{ROOT}/{farm}/gw/{gateway}/batch"


def health_topic(farm: str, gateway: str) -> str:
    return f"{ROOT}/{farm}/gw/{gateway}/health"


# Subscription filters for consumers.
UP_FILTER = f"{ROOT}/+/+/up"
BATCH_FILTER = f"{ROOT}/+/gw/+/batch"


@dataclass(frozen=True, slots=True)
class Topic:
    kind: TopicKind
    farm: str
    source: str  # node id, or gateway id for batch/health


def parse_topic(topic: str) -> Topic:
    """Parse a v1 topic; raise :class:`ProtocolError` (``bad_topic``) for anything else."""
    parts = topic.split("/")
    if len(parts) < 5 or parts[0] != "agri" or parts[1] != "v1":
        raise ProtocolError("bad_topic", f"not an agri/v1 topic: {topic[:120]!r}")
    farm = parts[2]
    if not valid_id(farm):
        raise ProtocolError("bad_topic", f"bad farm id in topic: {farm[:40]!r}")
    if len(parts) == 5 and parts[4] in ("up", "status", "config"):
        node = parts[3]
        if not valid_id(node) or node in RESERVED_NODE_IDS:
            raise ProtocolError("bad_topic", f"bad node id in topic: {node[:40]!r}")
        kind: TopicKind = parts[4]  # type: ignore[assignment]
        return Topic(kind, farm, node)
    if len(parts) == 6 and parts[3] == "gw" and parts[5] in ("batch", "health"):
        gw = parts[4]
        if not valid_id(gw):
            raise ProtocolError("bad_topic", f"bad gateway id in topic: {gw[:40]!r}")
        gkind: TopicKind = parts[5]  # type: ignore[assignment]
        return Topic(gkind, farm, gw)
    raise ProtocolError("bad_topic", f"unknown topic layout: {topic[:120]!r}")


# --- node messages ----------------------------------------------------------------------------


# Not frozen: one of these is built per reading on ingest's hot path, and a frozen dataclass's
# __init__ (object.__setattr__ per field) costs four times as much. Still hashable by value.
@dataclass(slots=True, unsafe_hash=True)
class Reading:
    farm: str
    node: str
    metric: str
    t: float  # Unix seconds, UTC
    value: float


@dataclass(frozen=True, slots=True)
class RejectedReading:
    reason: str
    detail: str
    metric: str | None
    t: float | None
    value: object


@dataclass(slots=True)
class NodeMessage:
    farm: str
    node: str
    seq: int
    boot: int
    readings: list[Reading] = field(default_factory=list)
    rejected: list[RejectedReading] = field(default_factory=list)
    dropped: int = 0  # readings the node's spool had to drop (reported by the node)


@dataclass(frozen=True, slots=True)
class Limits:
    """Acceptance window for timestamps, relative to the receiver's clock."""

    now: float
    skew_s: float = 300.0
    max_age_s: float = 730 * 86400.0


def _is_number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _as_float(x: int | float) -> float:
    """``float(x)``; an integer too large for a float becomes infinity (then refused as not finite)."""
    try:
        return float(x)
    except OverflowError:
        return math.inf


# Bounded, non-recursive-blowup rendering of arbitrary decoded JSON for error details.
_SHORT = reprlib.Repr()
_SHORT.maxlevel = 3
_SHORT.maxstring = 40
_SHORT.maxother = 40
_SHORT.maxlong = 40


def short(v: object) -> str:
    """A short, safe ``repr`` of any decoded JSON value (for error details)."""
    return _SHORT.repr(v)


def _check_int(obj: Mapping[str, Any], key: str, *, required: bool) -> int:
    if key not in obj:
        if required:
            raise ProtocolError("bad_field", f"missing {key!r}")
        return 0
    v = obj[key]
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < MAX_SEQ:
        raise ProtocolError("bad_field", f"{key!r} must be an integer in [0, 2^53), got {short(v)}")
    return v


def parse_json_object(payload: bytes, limit: int = MAX_PAYLOAD_BYTES) -> dict[str, Any]:
    if len(payload) > limit:
        raise ProtocolError("too_large", f"{len(payload)} bytes > limit {limit}")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError("bad_encoding", f"not UTF-8 at byte {exc.start}") from None
    try:
        obj = json.loads(text, parse_constant=_reject_constant)
    except ProtocolError:
        raise
    except (ValueError, RecursionError) as exc:
        raise ProtocolError("bad_json", str(exc)[:200]) from None
    if not isinstance(obj, dict):
        raise ProtocolError("bad_json", f"expected a JSON object, got {type(obj).__name__}")
    return obj


def _reject_constant(name: str) -> float:
    raise ProtocolError("bad_json", f"{name} is not valid JSON")


def _check_value(metric: Metric | None, name: str, raw: object) -> tuple[str, str] | None:
    """Return (reason, detail) if the value is unacceptable for the metric."""
    if metric is None:
        return ("unknown_metric", f"metric {name[:40]!r} is not in the catalog")
    if raw is None:
        return ("null_value", f"{name}: value is null (sensor read failed)")
    if not _is_number(raw):
        return ("bad_value", f"{name}: value must be a number, got {type(raw).__name__}")
    v = _as_float(raw)  # type: ignore[arg-type]
    if not math.isfinite(v):
        return ("bad_value", f"{name}: value is not finite")
    if not metric.in_range(v):
        return (
            "out_of_range",
            f"{name}={v:g} outside physical range [{metric.lo:g}, {metric.hi:g}] {metric.unit}",
        )
    return None


def _check_time(raw: object, limits: Limits) -> tuple[float | None, tuple[str, str] | None]:
    if not _is_number(raw):
        return None, ("bad_time", f"sample time must be Unix seconds, got {short(raw)}")
    t = _as_float(raw)  # type: ignore[arg-type]
    if not math.isfinite(t):
        return None, ("bad_time", "sample time is not finite")
    if t > limits.now + limits.skew_s:
        return t, ("future_time", f"t={t:.0f} is {t - limits.now:.0f}s ahead of the receiver clock")
    if t < limits.now - limits.max_age_s:
        return t, ("too_old", f"t={t:.0f} is older than retention ({limits.max_age_s / 86400:.0f} days)")
    return t, None


def decode_up(
    farm: str,
    node: str,
    payload: bytes,
    limits: Limits,
    catalog: Mapping[str, Metric] = CATALOG,
) -> NodeMessage:
    """Decode and validate one node message received on ``agri/v1/{farm}/{node}/up``.

    Raises :class:`ProtocolError` when the whole message is unusable (bad JSON, unknown version,
    wrong node). Individual bad readings do not spoil the rest: they are returned in
    ``NodeMessage.rejected`` with a reason, next to the good ``readings``.
    """
    obj = parse_json_object(payload)
    v = obj.get("v")
    if v != VERSION:
        raise ProtocolError("bad_version", f"unsupported message version {short(v)} (expected {VERSION})")
    msg_node = obj.get("node")
    if msg_node != node:
        raise ProtocolError("node_mismatch", f"payload node {short(msg_node)} != topic node {node!r}")
    seq = _check_int(obj, "seq", required=True)
    boot = _check_int(obj, "boot", required=False)
    dropped = _check_int(obj, "drop", required=False)
    samples = obj.get("s", [])
    if not isinstance(samples, list):
        raise ProtocolError("bad_field", "'s' must be a list of samples")
    out = NodeMessage(farm=farm, node=node, seq=seq, boot=boot, dropped=dropped)
    latest: float | None = None
    for i, sample in enumerate(samples):
        if not isinstance(sample, dict) or not isinstance(sample.get("m"), dict):
            out.rejected.append(
                RejectedReading(
                    "bad_sample", f"s[{i}] must be an object with 't' and 'm'", None, None, sample
                )
            )
            continue
        t, terr = _check_time(sample.get("t"), limits)
        values: dict[str, Any] = sample["m"]
        if terr is not None:
            for name, raw in values.items():
                out.rejected.append(RejectedReading(terr[0], terr[1], str(name), t, raw))
            if not values:
                out.rejected.append(RejectedReading(terr[0], terr[1], None, t, None))
            continue
        assert t is not None
        latest = t if latest is None else max(latest, t)
        _append_values(out, farm, node, t, values.items(), catalog)
    # Battery and RSSI ride in the envelope; store them as readings at the newest sample time.
    extras = [(k, obj[k]) for k, m in (("bat", "bat_v"), ("rssi", "rssi_dbm")) if k in obj]
    if extras:
        t_extra = latest if latest is not None else limits.now
        _append_values(
            out,
            farm,
            node,
            t_extra,
            [("bat_v" if k == "bat" else "rssi_dbm", raw) for k, raw in extras],
            catalog,
        )
    return out


def _append_values(
    out: NodeMessage,
    farm: str,
    node: str,
    t: float,
    items: Sequence[tuple[str, Any]] | Any,
    catalog: Mapping[str, Metric],
) -> None:
    readings, rejected = out.readings, out.rejected
    for name, raw in items:
        name = str(name)
        metric = catalog.get(name)
        # Fast path for the common case: a float (or int) inside the physical range. NaN and the
        # infinities fail the comparison and take the checked path below.
        kind = type(raw)
        if metric is not None and (kind is float or kind is int) and metric.lo <= raw <= metric.hi:
            readings.append(Reading(farm, node, name, t, float(raw)))
            continue
        err = _check_value(metric, name, raw)
        if err is not None:
            rejected.append(RejectedReading(err[0], err[1], name, t, raw))
        else:
            readings.append(Reading(farm, node, name, t, float(raw)))


def encode_up(
    node: str,
    seq: int,
    samples: Sequence[tuple[float, Mapping[str, float]]],
    *,
    boot: int = 0,
    bat: float | None = None,
    rssi: float | None = None,
    dropped: int = 0,
) -> bytes:
    """Encode a node message (used by simulators, tests and the benchmark load generator)."""
    obj: dict[str, Any] = {"v": VERSION, "node": node, "seq": seq, "boot": boot}
    obj["s"] = [{"t": t, "m": dict(m)} for t, m in samples]
    if bat is not None:
        obj["bat"] = bat
    if rssi is not None:
        obj["rssi"] = rssi
    if dropped:
        obj["drop"] = dropped
    return json.dumps(obj, separators=(",", ":")).encode()


# --- gateway batches --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BadEntry:
    """An envelope entry that is not a node payload: one the gateway marked invalid (with its
    reason, e.g. ``bad_encoding``, and the message's raw bytes) or a malformed one (``bad_entry``)."""

    node: str | None  # the node id, when the entry names a valid one
    reason: str
    detail: str
    raw: bytes  # the message as the gateway received it; for a malformed entry, the entry's JSON


@dataclass(frozen=True, slots=True)
class Batch:
    gateway: str
    farm: str
    batch_id: str
    messages: list[tuple[str, bytes]]  # (node id, verbatim node payload)
    invalid: list[BadEntry] = field(default_factory=list)


_REASON_RE = re.compile(r"[a-z][a-z0-9_]{0,31}\Z")


def _gateway_invalid(m: dict[str, Any]) -> BadEntry | None:
    """A ``{"node", "invalid": "<reason>: <detail>", "raw_b64"}`` entry; None if it is not one."""
    why, b64, node = m.get("invalid"), m.get("raw_b64"), m.get("node")
    if not isinstance(why, str) or not isinstance(b64, str) or len(b64) > MAX_INVALID_B64:
        return None
    try:
        raw = base64.b64decode(b64, validate=True)
    except ValueError:
        return None
    reason, _, detail = why.partition(": ")
    if not _REASON_RE.match(reason):
        reason, detail = "bad_entry", why
    ok_node = isinstance(node, str) and valid_id(node) and node not in RESERVED_NODE_IDS
    return BadEntry(node if ok_node else None, reason, detail[:500] or "marked invalid by the gateway", raw)


def encode_batch(
    gateway: str,
    farm: str,
    batch_id: str,
    messages: Sequence[tuple[str, bytes]],
    invalid: Sequence[tuple[str, str, bytes]] = (),
) -> bytes:
    """Encode a gateway envelope.

    ``invalid`` holds (topic node segment, ``"<reason>: <detail>"``, raw bytes) of messages the
    gateway received but cannot carry verbatim (not UTF-8, bad topic, too large). They travel as
    ``{"node":..,"invalid":"<reason>: <detail>","raw_b64":..}`` entries, which :func:`decode_batch`
    reports as :class:`BadEntry` with that node, reason and detail, so the central dead-letter
    table records them as the gateway classified them.
    """
    msgs: list[dict[str, str]] = [{"node": n, "p": p.decode("utf-8")} for n, p in messages]
    msgs += [
        {"node": n, "invalid": why, "raw_b64": base64.b64encode(raw).decode("ascii")}
        for n, why, raw in invalid
    ]
    body = {"v": VERSION, "gw": gateway, "farm": farm, "batch": batch_id, "msgs": msgs}
    return zlib.compress(json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode(), 6)


def decode_batch(farm: str, gateway: str, payload: bytes) -> Batch:
    """Inflate and check a gateway envelope; raise :class:`ProtocolError` if unusable."""
    if len(payload) > MAX_BATCH_BYTES:
        raise ProtocolError("too_large", f"batch of {len(payload)} bytes > limit {MAX_BATCH_BYTES}")
    d = zlib.decompressobj()
    try:
        raw = d.decompress(payload, MAX_BATCH_INFLATED)
    except zlib.error as exc:
        raise ProtocolError("bad_compression", str(exc)[:200]) from None
    if d.unconsumed_tail:
        raise ProtocolError("too_large", f"batch inflates beyond {MAX_BATCH_INFLATED} bytes")
    if not d.eof:
        raise ProtocolError("bad_compression", "truncated zlib stream")
    obj = parse_json_object(raw, limit=MAX_BATCH_INFLATED)
    if obj.get("v") != VERSION:
        raise ProtocolError("bad_version", f"unsupported batch version {short(obj.get('v'))}")
    if obj.get("gw") != gateway or obj.get("farm") != farm:
        raise ProtocolError("gateway_mismatch", "envelope gw/farm do not match the topic")
    batch_id = obj.get("batch")
    if not isinstance(batch_id, str) or not 0 < len(batch_id) <= 128:
        raise ProtocolError("bad_field", "'batch' must be a non-empty string of at most 128 characters")
    msgs = obj.get("msgs")
    if not isinstance(msgs, list):
        raise ProtocolError("bad_field", "'msgs' must be a list")
    out: list[tuple[str, bytes]] = []
    invalid: list[BadEntry] = []
    for i, m in enumerate(msgs):
        # ensure_ascii: JSON strings may hold lone surrogates, which UTF-8 cannot encode.
        if isinstance(m, dict) and "invalid" in m and "p" not in m:
            bad = _gateway_invalid(m)
            invalid.append(
                bad
                or BadEntry(None, "bad_entry", f"msgs[{i}]: malformed invalid entry",
                            json.dumps(m, ensure_ascii=True)[:4096].encode())
            )  # fmt: skip
            continue
        if not isinstance(m, dict) or not isinstance(m.get("node"), str) or not isinstance(m.get("p"), str):
            raw = json.dumps(m, ensure_ascii=True)[:4096].encode()
            invalid.append(BadEntry(None, "bad_entry", f"msgs[{i}] must be {{'node': str, 'p': str}}", raw))
            continue
        node = m["node"]
        if not valid_id(node) or node in RESERVED_NODE_IDS:
            raw = json.dumps(m, ensure_ascii=True)[:4096].encode()
            invalid.append(BadEntry(None, "bad_entry", f"msgs[{i}]: bad node id {short(node)}", raw))
            continue
        # surrogatepass keeps the payload byte-exact for the dead-letter row; decode_up then
        # refuses it as bad_encoding.
        out.append((node, m["p"].encode("utf-8", "surrogatepass")))
    return Batch(gateway=gateway, farm=farm, batch_id=batch_id, messages=out, invalid=invalid)
