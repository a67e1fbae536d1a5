"""No input can crash ingest: hypothesis over payload bytes and JSON structures.

Everything a decoded message yields must also be storable: texts PostgreSQL accepts, timestamps in
range, keys present. The database half of the same property runs in test_writer.py.
"""

import json
import math
import zlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernel.catalog import CATALOG
from kernel.decode import Decoded, decode_message
from kernel.protocol import Limits
from store.writer import clean_text, reading_time

NOW = 1_764_201_600.0
LIM = Limits(now=NOW)
UP = "agri/v1/farm-a/n-1/up"
BATCH = "agri/v1/farm-a/gw/gw-1/batch"

# Any character, lone surrogates and NUL included (JSON \\u escapes can carry them).
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=12)
numbers = st.one_of(
    st.integers(),
    st.integers(-(10**400), 10**400),
    st.floats(),
    st.sampled_from(
        [0, -1, 1.5, 1e308, -1e308, 10**309, -(10**309), 2**53, 2**63, NOW, NOW + 1e6, NOW - 1e9]
    ),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, any_text)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=12,
)
metric_names = st.one_of(st.sampled_from(sorted(CATALOG)), any_text)
times = st.one_of(st.integers(int(NOW) - 10**6, int(NOW) + 10**4).map(float), json_values)
samples = st.one_of(
    st.fixed_dictionaries({"t": times, "m": st.dictionaries(metric_names, json_values, max_size=6)}),
    json_values,
)
node_messages = st.fixed_dictionaries(
    {
        "v": st.one_of(st.just(1), json_values),
        "node": st.one_of(st.just("n-1"), json_values),
        "seq": st.one_of(st.integers(0, 2**53 - 1), json_values),
        "s": st.one_of(st.lists(samples, max_size=6), json_values),
    },
    optional={"boot": json_values, "bat": numbers, "rssi": numbers, "drop": json_values},
)


def dumps(obj: object, ascii_: bool) -> bytes:
    return json.dumps(obj, ensure_ascii=ascii_, allow_nan=True).encode("utf-8", "surrogatepass")


def check_storable(d: Decoded) -> None:
    # decode_message turns a decoder exception into a `decode_error` dead letter; fuzzing must
    # find none of them (each one is a bug in kernel.protocol).
    assert all(r.reason != "decode_error" for r in d.rejects), d.rejects
    rejects = list(d.rejects)
    for a in d.accepted:
        rejects += a.reading_rejects()
        rejects.append(a.as_reject("unknown_node", "x"))
        for r in a.msg.readings:
            assert math.isfinite(r.value) and math.isfinite(r.t)
            assert CATALOG[r.metric].in_range(r.value)
            assert NOW - LIM.max_age_s <= r.t <= NOW + LIM.skew_s
    for r in rejects:
        assert r.reason and r.detail and isinstance(r.raw, bytes) and r.key
        for s in (r.source, r.farm, r.node, r.metric, r.reason, r.detail):
            c = clean_text(s)
            assert c is None or ("\x00" not in c and isinstance(c.encode("utf-8"), bytes))
        reading_time(r.t)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_any_bytes(payload: bytes) -> None:
    check_storable(decode_message(UP, payload, LIM))
    check_storable(decode_message(BATCH, payload, LIM))
    check_storable(decode_message(BATCH, zlib.compress(payload), LIM))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(json_values, st.booleans())
def test_any_json(obj: object, ascii_: bool) -> None:
    check_storable(decode_message(UP, dumps(obj, ascii_), LIM))
    check_storable(decode_message(BATCH, zlib.compress(dumps(obj, ascii_)), LIM))


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(node_messages, st.booleans())
def test_node_message_structures(obj: dict[str, object], ascii_: bool) -> None:
    payload = dumps(obj, ascii_)
    d = decode_message(UP, payload, LIM)
    check_storable(d)
    if d.accepted:  # every reading the message carries is either stored or dead-lettered
        a = d.accepted[0]
        expected = sum(_entries(s) for s in obj["s"])  # type: ignore[attr-defined]
        expected += ("bat" in obj) + ("rssi" in obj)
        assert len(a.msg.readings) + len(a.msg.rejected) == expected


def _entries(sample: object) -> int:
    if not isinstance(sample, dict) or not isinstance(sample.get("m"), dict):
        return 1  # bad_sample
    # An empty sample yields nothing, unless its time is bad (then one dead letter says so).
    return len(sample["m"]) or (0 if _ok_time(sample.get("t")) else 1)


def _ok_time(t: object) -> bool:
    if isinstance(t, bool) or not isinstance(t, int | float):
        return False
    try:
        return NOW - LIM.max_age_s <= float(t) <= NOW + LIM.skew_s
    except OverflowError:
        return False


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.one_of(st.just("n-1"), any_text), node_messages), max_size=4), st.booleans())
def test_gateway_batches_of_fuzzed_node_messages(
    entries: list[tuple[str, dict[str, object]]], a: bool
) -> None:
    # Built by hand (not encode_batch) so node ids and payloads may hold any character.
    msgs = [{"node": node, "p": dumps(m, a).decode("utf-8", "surrogatepass")} for node, m in entries]
    body = {"v": 1, "gw": "gw-1", "farm": "farm-a", "batch": "b-1", "msgs": msgs}
    check_storable(decode_message(BATCH, zlib.compress(dumps(body, True)), LIM))
