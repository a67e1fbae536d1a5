"""Pure parts: message classification, batch planning and envelopes, backoff, webhook signatures."""

import random

import pytest

from gateway import batching
from gateway.classify import MAX_FORWARDED_RAW, classify
from gateway.spool import Row
from gateway.webhook import sign, verify
from kernel.backoff import Backoff
from kernel.protocol import Limits, decode_batch, encode_batch, encode_up

NOW = 1_764_201_600.0
LIM = Limits(now=NOW)
TOPIC = "agri/v1/pig-1/n-1/up"


def test_valid_message_travels_verbatim_with_readings() -> None:
    p = encode_up("n-1", 5, [(NOW, {"air_t": 33.0, "nh3_ppm": 12.0})], bat=3.9)
    c = classify("pig-1", TOPIC, p, NOW, LIM)
    assert (c.entry.node, c.entry.payload, c.entry.invalid, c.dead) == ("n-1", p, None, None)
    assert {(r.metric, r.value) for r in c.readings} == {("air_t", 33.0), ("nh3_ppm", 12.0), ("bat_v", 3.9)}


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", "bad_json"),
        (b'{"v":2,"node":"n-1","seq":1}', "bad_version"),
        (b'{"v":1,"node":"n-2","seq":1}', "node_mismatch"),
        (b'{"v":1,"node":"n-1"}', "bad_field"),
    ],
)
def test_unusable_message_is_dead_lettered_and_still_forwarded_verbatim(payload: bytes, reason: str) -> None:
    c = classify("pig-1", TOPIC, payload, NOW, LIM)
    assert c.entry.payload == payload and c.entry.invalid is None  # central decodes the same bytes
    assert c.dead is not None and (c.dead.reason, c.dead.whole, c.dead.payload) == (reason, True, payload)
    assert c.readings == []


def test_partly_bad_message_keeps_good_readings_and_a_dead_letter() -> None:
    p = encode_up("n-1", 6, [(NOW, {"air_t": 99.0, "air_rh": 50.0, "moon": 1.0})])
    c = classify("pig-1", TOPIC, p, NOW, LIM)
    assert [(r.metric, r.value) for r in c.readings] == [("air_rh", 50.0)]
    assert c.dead is not None and not c.dead.whole
    assert c.dead.reason == "out_of_range"
    assert "2 of 3 readings rejected (out_of_range, unknown_metric)" in c.dead.detail
    assert c.entry.payload == p and c.entry.invalid is None


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        (TOPIC, b'{"v":1,"node":"n-1","seq":1,"x":"\xff\xfe"}', "bad_encoding"),
        ("agri/v1/pig-1/N_1/up", b'{"v":1}', "bad_topic"),
        ("agri/v1/pig-1/gw/up", b'{"v":1}', "bad_topic"),
        (TOPIC, b"[" * 300_000, "too_large"),
    ],
)
def test_message_that_cannot_travel_verbatim_becomes_an_invalid_entry(
    topic: str, payload: bytes, reason: str
) -> None:
    c = classify("pig-1", topic, payload, NOW, LIM)
    assert c.entry.invalid is not None and c.entry.invalid.startswith(reason + ":")
    assert c.entry.payload == payload[:MAX_FORWARDED_RAW]
    assert c.dead is not None and c.dead.reason == reason and c.dead.payload == payload[: 256 * 1024]
    # ... and the envelope carries it so central records it with the gateway's reason.
    row = Row(1, NOW, c.entry.node, c.entry.payload, c.entry.invalid)
    b = decode_batch("pig-1", "gw-1", batching.envelope("gw-1", "pig-1", "b1", [row]))
    assert b.messages == []
    (bad,) = b.invalid
    assert (bad.reason, bad.raw) == (reason, c.entry.payload)
    assert bad.detail == c.dead.detail and f"{bad.reason}: {bad.detail}" == c.entry.invalid
    assert bad.node == (c.entry.node if reason != "bad_topic" else None)  # only a valid node id


def test_envelope_of_valid_rows_is_encode_batch_byte_for_byte() -> None:
    rows = [Row(i, NOW, f"n-{i}", encode_up(f"n-{i}", i, [(NOW, {"air_t": 20.0 + i})]), None) for i in (1, 2)]
    data = batching.envelope("gw-1", "pig-1", "b", rows)
    assert data == encode_batch("gw-1", "pig-1", "b", [(r.node, r.payload) for r in rows])
    assert decode_batch("pig-1", "gw-1", data).messages == [(r.node, r.payload) for r in rows]


def test_plan_full_partial_and_byte_capped_batches() -> None:
    head = [(i, NOW + i * 0.01, 100) for i in range(1, 12)]
    kw = {"max_messages": 10, "max_bytes": 10_000, "linger_s": 5.0}
    assert batching.plan(head, now=NOW, **kw) == (1, 10)  # full: goes at once
    assert batching.plan(head[:5], now=NOW + 1, **kw) is None  # partial: lingers
    assert batching.plan(head[:5], now=NOW + 5.01, **kw) == (1, 5)  # ... until linger_s
    assert batching.plan(head, now=NOW, max_messages=10, max_bytes=350, linger_s=5) == (1, 3)
    big = [(7, NOW, 5000), (8, NOW, 10)]
    assert batching.plan(big, now=NOW, max_messages=10, max_bytes=1000, linger_s=5) == (7, 7)
    assert batching.plan([], now=NOW, **kw) is None


def test_batch_id_is_derived_from_row_range() -> None:
    rows = [Row(i, NOW, "n-1", encode_up("n-1", i, []), None) for i in (41, 42, 45)]
    br, data, covered = batching.build("gw-1", "pig-1", "ab12cd34", rows)
    assert (br.batch_id, br.first_id, br.last_id) == ("gw-1-ab12cd34-41-45", 41, 45)
    assert decode_batch("pig-1", "gw-1", data).batch_id == br.batch_id and covered == rows
    assert batching.build("gw-1", "pig-1", "ab12cd34", rows)[1] == data  # deterministic bytes


def test_backoff_is_capped_and_resets() -> None:
    b = Backoff(1.0, 8.0, rand=lambda: 1.0)
    assert [b.next_delay() for _ in range(6)] == [2.0, 4.0, 8.0, 8.0, 8.0, 8.0]
    lo = Backoff(1.0, 8.0, rand=lambda: 0.0)
    assert [lo.next_delay() for _ in range(3)] == [1.0, 1.0, 1.0]  # never below min_s
    b.reset()
    assert b.next_delay() == 2.0
    with pytest.raises(ValueError):
        Backoff(2.0, 1.0)


def test_backoff_jitter_spreads_clients_over_the_whole_window() -> None:
    """1,000 gateways that lost the broker together: their 5th retry is spread over [min_s, step]."""
    rng = random.Random(7)
    delays = [Backoff(1.0, 60.0, rand=rng.random).delay(4) for _ in range(1000)]
    assert 1.0 <= min(delays) < 4.0 and 28.0 < max(delays) <= 32.0
    assert len({round(d, 1) for d in delays}) > 200  # not a few lock-step values


def test_webhook_signature_covers_timestamp_and_body() -> None:
    secret, body = b"s" * 32, b'{"rule":"barn-heat"}'
    sig = sign(secret, 1700000000, body)
    assert sig.startswith("sha256=") and len(sig) == 7 + 64
    assert verify(secret, "1700000000", sig, body, now=1700000010)
    assert not verify(secret, "1700000001", sig, body, now=1700000010)  # timestamp is signed
    assert not verify(secret, "1700000000", sig, body + b" ", now=1700000010)
    assert not verify(b"t" * 32, "1700000000", sig, body, now=1700000010)
    assert not verify(secret, "1700000000", sig, body, now=1700000000 + 301)  # replay window
    assert not verify(secret, "soon", sig, body, now=1700000000)
