import json
import zlib

import pytest

from kernel.protocol import (
    BadEntry,
    Limits,
    ProtocolError,
    decode_batch,
    decode_up,
    encode_batch,
    encode_up,
    parse_topic,
)

NOW = 1_764_201_600.0
LIM = Limits(now=NOW)


def msg(**over: object) -> bytes:
    obj: dict[str, object] = {
        "v": 1,
        "node": "n-0012",
        "seq": 1234,
        "boot": 7,
        "s": [{"t": NOW - 60, "m": {"air_t": 21.5, "air_rh": 65.2}}, {"t": NOW, "m": {"air_t": 21.7}}],
        "bat": 3.91,
        "rssi": -71,
    }
    obj.update(over)
    return json.dumps(obj).encode()


def test_design_example_decodes_to_readings() -> None:
    m = decode_up("farm-a", "n-0012", msg(), LIM)
    assert (m.seq, m.boot, m.dropped, m.rejected) == (1234, 7, 0, [])
    got = {(r.metric, r.t, r.value) for r in m.readings}
    assert got == {
        ("air_t", NOW - 60, 21.5),
        ("air_rh", NOW - 60, 65.2),
        ("air_t", NOW, 21.7),
        ("bat_v", NOW, 3.91),
        ("rssi_dbm", NOW, -71.0),
    }


def test_bad_readings_are_rejected_individually_with_reasons() -> None:
    samples = [
        {"t": NOW, "m": {"air_t": 99.0, "air_rh": 50, "moon": 1, "soil_t": None, "ph": "7"}},
        {"t": NOW + 3600, "m": {"air_t": 20.0}},
        {"t": NOW - 800 * 86400, "m": {"air_t": 20.0}},
        {"t": "yesterday", "m": {"air_t": 20.0}},
        "not a sample",
    ]
    m = decode_up("farm-a", "n-0012", msg(s=samples, bat=99), LIM)
    assert [(r.metric, r.value) for r in m.readings] == [("air_rh", 50.0), ("rssi_dbm", -71.0)]
    reasons = sorted((r.reason, r.metric) for r in m.rejected)
    assert reasons == sorted(
        [
            ("out_of_range", "air_t"),
            ("unknown_metric", "moon"),
            ("null_value", "soil_t"),
            ("bad_value", "ph"),
            ("future_time", "air_t"),
            ("too_old", "air_t"),
            ("bad_time", "air_t"),
            ("bad_sample", None),
            ("out_of_range", "bat_v"),
        ]
    )
    assert all(r.detail for r in m.rejected)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xff\xfe", "bad_encoding"),
        (b"{not json", "bad_json"),
        (b"[1, 2]", "bad_json"),
        (b'{"v": 1, "node": "n-0012", "seq": NaN}', "bad_json"),
        (msg(v=2), "bad_version"),
        (msg(node="other"), "node_mismatch"),
        (msg(seq=-1), "bad_field"),
        (msg(seq=True), "bad_field"),
        (msg(seq=2**60), "bad_field"),
        (msg(s={"t": 1}), "bad_field"),
        (b"{" + b" " * 300_000 + b"}", "too_large"),
    ],
)
def test_unusable_messages_raise_with_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError) as exc:
        decode_up("farm-a", "n-0012", payload, LIM)
    assert exc.value.reason == reason


def test_encode_up_round_trips() -> None:
    raw = encode_up("n-1", 5, [(NOW, {"do_mgl": 6.5, "ph": 7.2})], boot=2, bat=3.7, dropped=4)
    m = decode_up("pond-1", "n-1", raw, LIM)
    assert (m.seq, m.boot, m.dropped) == (5, 2, 4)
    assert {r.metric for r in m.readings} == {"do_mgl", "ph", "bat_v"}


def test_topics_parse_and_refuse_garbage() -> None:
    assert parse_topic("agri/v1/farm-a/n-1/up").kind == "up"
    t = parse_topic("agri/v1/farm-a/gw/gw-1/batch")
    assert (t.kind, t.farm, t.source) == ("batch", "farm-a", "gw-1")
    for bad in [
        "agri/v2/f/n/up",
        "agri/v1/F/n/up",
        "agri/v1/f/gw/up",
        "agri/v1/f/n/down",
        "x",
        "agri/v1/f/n/up/x",
    ]:
        with pytest.raises(ProtocolError):
            parse_topic(bad)


def test_batch_round_trip_and_limits() -> None:
    msgs = [("n-1", msg(node="n-1")), ("n-2", msg(node="n-2"))]
    b = decode_batch("farm-a", "gw-1", encode_batch("gw-1", "farm-a", "gw-1:1-2", msgs))
    assert b.batch_id == "gw-1:1-2" and b.messages == msgs and b.invalid == []
    with pytest.raises(ProtocolError, match="gateway_mismatch"):
        decode_batch("farm-b", "gw-1", encode_batch("gw-1", "farm-a", "x", msgs))
    with pytest.raises(ProtocolError) as exc:
        decode_batch("farm-a", "gw-1", b"not zlib")
    assert exc.value.reason == "bad_compression"
    bomb = zlib.compress(b"{" + b" " * (40 * 1024 * 1024) + b"}")
    with pytest.raises(ProtocolError) as exc:
        decode_batch("farm-a", "gw-1", bomb)
    assert exc.value.reason == "too_large"


def test_batch_keeps_good_entries_next_to_malformed_ones() -> None:
    body = {
        "v": 1,
        "gw": "gw-1",
        "farm": "farm-a",
        "batch": "b1",
        "msgs": [{"node": "n-1", "p": "{}"}, {"node": 5}, "junk"],
    }
    b = decode_batch("farm-a", "gw-1", zlib.compress(json.dumps(body).encode()))
    assert b.messages == [("n-1", b"{}")]
    assert len(b.invalid) == 2


def test_batch_invalid_entries_carry_reason_and_raw_bytes() -> None:
    good = msg()
    data = encode_batch(
        "gw-1", "farm-a", "b1", [("n-0012", good)], [("n-0012", "bad_encoding: x", b"\xff\xfe")]
    )
    b = decode_batch("farm-a", "gw-1", data)
    assert b.messages == [("n-0012", good)]
    assert b.invalid == [BadEntry("n-0012", "bad_encoding", "x", b"\xff\xfe")]
    # An entry marked invalid whose reason is not a code, or whose raw bytes are not base64,
    # is still kept, as a bad_entry.
    body = {"v": 1, "gw": "gw-1", "farm": "farm-a", "batch": "b2", "msgs": [
        {"node": "n-1", "invalid": "Not A Code", "raw_b64": "AA=="},
        {"node": "n-1", "invalid": "bad_encoding: x", "raw_b64": "%%%"},
    ]}  # fmt: skip
    b = decode_batch("farm-a", "gw-1", zlib.compress(json.dumps(body).encode()))
    assert [(e.node, e.reason, e.detail) for e in b.invalid] == [
        ("n-1", "bad_entry", "Not A Code"),
        (None, "bad_entry", "msgs[1]: malformed invalid entry"),
    ]
    # Without invalid entries the envelope is unchanged.
    assert encode_batch("gw-1", "farm-a", "b1", [("n-0012", good)]) == encode_batch(
        "gw-1", "farm-a", "b1", [("n-0012", good)], []
    )
