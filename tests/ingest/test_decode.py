"""kernel.decode: both topic kinds to accepted messages and dead letters, with stable keys."""

import json
import zlib

from kernel.decode import decode_message, message_key
from kernel.protocol import Limits, encode_batch, encode_up

NOW = 1_764_201_600.0
LIM = Limits(now=NOW)


def up(node: str = "n-1", seq: int = 1, **m: float) -> bytes:
    return encode_up(node, seq, [(NOW - 60, m or {"air_t": 20.5})], bat=3.9)


def test_node_message_accepted_with_its_readings() -> None:
    d = decode_message("agri/v1/farm-a/n-1/up", up(air_t=21.0, air_rh=60.0), LIM)
    assert d.rejects == [] and len(d.accepted) == 1
    a = d.accepted[0]
    assert (a.msg.farm, a.msg.node, a.msg.seq) == ("farm-a", "n-1", 1)
    assert {(r.metric, r.value) for r in a.msg.readings} == {
        ("air_t", 21.0),
        ("air_rh", 60.0),
        ("bat_v", 3.9),
    }
    assert d.n_readings == 3


def test_bad_readings_become_individual_dead_letters_next_to_good_ones() -> None:
    d = decode_message("agri/v1/farm-a/n-1/up", up(air_t=99.0, air_rh=60.0), LIM)
    rej = d.accepted[0].reading_rejects()
    assert [(r.reason, r.metric, r.t) for r in rej] == [("out_of_range", "air_t", NOW - 60)]
    assert json.loads(rej[0].raw) == {"t": NOW - 60, "m": {"air_t": 99.0}}
    assert [r.metric for r in d.accepted[0].msg.readings] == ["air_rh", "bat_v"]


def test_unusable_message_is_one_dead_letter_with_the_raw_payload() -> None:
    d = decode_message("agri/v1/farm-a/n-1/up", b"\x00garbage", LIM)
    assert d.accepted == []
    (r,) = d.rejects
    assert (r.reason, r.farm, r.node, r.raw) == ("bad_json", "farm-a", "n-1", b"\x00garbage")


def test_bad_topic_and_unconsumed_kinds_are_refused() -> None:
    assert decode_message("agri/v1/Farm/n-1/up", up(), LIM).rejects[0].reason == "bad_topic"
    assert decode_message("agri/v1/farm-a/n-1/status", b"online", LIM).rejects[0].reason == "bad_topic"
    assert decode_message("agri/v1/farm-a/gw/up", up(), LIM).rejects[0].reason == "bad_topic"


def test_gateway_batch_yields_each_node_message_and_rejects_bad_entries() -> None:
    env = encode_batch(
        "gw-1", "farm-a", "b-1", [("n-1", up("n-1")), ("n-2", up("n-2", air_t=20.0)), ("n-3", b"{")]
    )
    d = decode_message("agri/v1/farm-a/gw/gw-1/batch", env, LIM)
    assert d.batch_id == "b-1"
    assert [a.msg.node for a in d.accepted] == ["n-1", "n-2"]
    assert [(r.reason, r.node, r.raw) for r in d.rejects] == [("bad_json", "n-3", b"{")]
    body = {"v": 1, "gw": "gw-1", "farm": "farm-a", "batch": "b", "msgs": [{"node": "BAD", "p": "{}"}]}
    d = decode_message("agri/v1/farm-a/gw/gw-1/batch", zlib.compress(json.dumps(body).encode()), LIM)
    assert [r.reason for r in d.rejects] == ["bad_entry"]


def test_keys_identify_a_payload_whichever_path_it_took() -> None:
    p = up(air_t=99.0)
    direct = decode_message("agri/v1/farm-a/n-1/up", p, LIM)
    via_gw = decode_message(
        "agri/v1/farm-a/gw/gw-1/batch", encode_batch("gw-1", "farm-a", "b", [("n-1", p)]), LIM
    )
    assert direct.accepted[0].key == via_gw.accepted[0].key == message_key("farm-a", "n-1", p)
    assert direct.accepted[0].reading_rejects()[0].key == via_gw.accepted[0].reading_rejects()[0].key
    # ... and differ for different payloads, metrics and positions
    other = decode_message("agri/v1/farm-a/n-1/up", up(seq=2, air_t=99.0), LIM)
    assert other.accepted[0].key != direct.accepted[0].key
    bad = decode_message("agri/v1/farm-a/n-1/up", b"[]", LIM)
    assert bad.rejects[0].key == message_key("farm-a", "n-1", b"[]") + b"m"
