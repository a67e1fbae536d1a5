"""store.writer against a real TimescaleDB: one transaction per batch, replays change nothing."""

import json
import time

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernel.decode import Decoded, decode_message
from kernel.protocol import Limits, encode_up, up_topic
from store.writer import StoreUnavailable, Writer
from tests.ingest.support import register, rejected, stored
from tests.ingest.test_fuzz import node_messages

pytestmark = pytest.mark.integration

NOW = float(int(time.time()))


def msg(node: str, seq: int, t: float = NOW - 600, farm: str = "farm-w", **m: float) -> Decoded:
    payload = encode_up(node, seq, [(t, m or {"air_t": 20.0, "air_rh": 55.0})], boot=1)
    return decode_message(up_topic(farm, node), payload, Limits(now=time.time()))


@pytest.fixture(scope="module")
def writer(db_url: str) -> Writer:
    register(db_url, "farm-w", ["n-1", "n-2", "n-3"])
    w = Writer(db_url)
    yield w  # type: ignore[misc]
    w.close()


def node_row(db: psycopg.Connection, node: str) -> tuple[object, ...]:
    row = db.execute(
        "SELECT last_seq, last_boot, msgs_received, dropped_reported, last_seen IS NOT NULL FROM nodes"
        " WHERE farm_id = 'farm-w' AND node_id = %s",
        (node,),
    ).fetchone()
    assert row is not None
    return tuple(row)


def test_batch_is_stored_and_a_replay_changes_nothing(
    writer: Writer, db_url: str, db: psycopg.Connection
) -> None:
    batch = [
        msg("n-1", 0, NOW - 60),
        msg("n-1", 1, NOW - 30),
        msg("n-2", 0, NOW - 60, air_t=99.0, soil_t=12.0),
    ]
    res = writer.write(batch)
    assert (res.stored, res.duplicates, dict(res.rejected), res.messages) == (5, 0, {"out_of_range": 1}, 3)
    assert stored(db_url, "farm-w")[("n-1", "air_rh", NOW - 30)] == 1
    assert node_row(db, "n-1") == (1, 1, 2, 0, True)
    before = (stored(db_url, "farm-w"), rejected(db_url, "farm-w"))
    again = writer.write(batch)  # e.g. redelivered after a crash before the ack
    assert (again.stored, again.duplicates) == (0, 5)
    assert (stored(db_url, "farm-w"), rejected(db_url, "farm-w")) == before
    assert node_row(db, "n-1") == (1, 1, 2, 0, True)


def test_partly_duplicate_batch_stores_only_the_new_readings(writer: Writer, db_url: str) -> None:
    old = msg("n-3", 0, NOW - 300)
    writer.write([old])
    res = writer.write([old, msg("n-3", 1, NOW - 200), msg("n-3", 1, NOW - 200)])
    assert (res.stored, res.duplicates) == (2, 4)
    assert set(stored(db_url, "farm-w")) >= {("n-3", "air_t", NOW - 200), ("n-3", "air_t", NOW - 300)}


def test_unknown_node_is_dead_lettered_with_its_payload(writer: Writer, db: psycopg.Connection) -> None:
    d = msg("n-99", 0)
    res = writer.write([d])
    assert (res.stored, dict(res.rejected)) == (0, {"unknown_node": 1})
    reason, raw = db.execute("SELECT reason, raw FROM rejects WHERE node_id = 'n-99'").fetchone()  # type: ignore[misc]
    assert reason == "unknown_node" and bytes(raw) == d.accepted[0].raw


def test_a_batch_encoded_ahead_is_stored_the_same_and_misses_fall_back(
    writer: Writer, db_url: str, db: psycopg.Connection
) -> None:
    register(db_url, "farm-w", ["n-pre"])
    first = [msg("n-pre", 0, NOW - 90)]
    assert writer.prepare(first) is None  # node not cached yet: write() resolves it
    writer.write(first)
    batch = [msg("n-pre", 1, NOW - 80, air_t=99.0, air_rh=50.0, soil_t=12.0), msg("n-pre", 2, NOW - 70)]
    assert writer.prepare(batch) is None  # soil_t has no series yet
    writer.write([msg("n-pre", 3, NOW - 75, soil_t=10.0)])
    prepared = writer.prepare(batch)
    assert prepared is not None and prepared.n_rows == 4
    res = writer.write(batch, prepared)
    assert (res.stored, res.duplicates, dict(res.rejected), res.messages) == (4, 0, {"out_of_range": 1}, 2)
    got = stored(db_url, "farm-w")
    assert got[("n-pre", "soil_t", NOW - 80)] == 1 and got[("n-pre", "air_t", NOW - 70)] == 1
    assert got[("n-pre", "air_t", NOW - 80)] == 0
    assert node_row(db, "n-pre")[:3] == (3, 1, 4)
    assert writer.prepare([msg("n-nope", 0)]) is None  # unknown node: write() dead-letters it


def test_new_catalog_metric_of_a_known_node_becomes_a_series(writer: Writer, db: psycopg.Connection) -> None:
    writer.write([msg("n-2", 5, NOW - 100, nh3_ppm=12.5, moon=1.0)])
    metrics = {
        r[0]
        for r in db.execute(
            "SELECT s.metric FROM series s JOIN nodes n ON n.id = s.node_id WHERE n.node_id = 'n-2'"
        ).fetchall()
    }
    assert "nh3_ppm" in metrics and "moon" not in metrics
    assert db.execute(
        "SELECT count(*) FROM rejects WHERE metric = 'moon' AND reason = 'unknown_metric'"
    ).fetchone() == (1,)


def test_seq_gaps_are_recorded_then_filled_and_completeness_follows(
    writer: Writer, db: psycopg.Connection
) -> None:
    register(writer.dsn, "farm-w", ["n-gap"])
    writer.write([msg("n-gap", s, NOW - 1000 + s) for s in (10, 11, 15)])
    gaps = db.execute(
        "SELECT from_seq, to_seq, filled_at IS NULL FROM seq_gaps g JOIN nodes n ON n.id = g.node_id"
        " WHERE n.node_id = 'n-gap' ORDER BY from_seq"
    ).fetchall()
    assert gaps == [(12, 14, True)]
    comp = "SELECT msgs_received, msgs_missing, completeness FROM node_completeness WHERE node_id = 'n-gap'"
    assert db.execute(comp).fetchone() == (3, 3, 0.5)
    writer.write([msg("n-gap", 13, NOW - 1000 + 13)])  # arrives late
    gaps = db.execute(
        "SELECT from_seq, to_seq, filled_at IS NULL FROM seq_gaps g JOIN nodes n ON n.id = g.node_id"
        " WHERE n.node_id = 'n-gap' ORDER BY from_seq"
    ).fetchall()
    assert gaps == [(12, 12, True), (13, 13, False), (14, 14, True)]
    assert db.execute(comp).fetchone() == (4, 2, pytest.approx(4 / 6))


def test_a_message_the_database_refuses_is_isolated_and_dead_lettered(
    writer: Writer, db_url: str, db: psycopg.Connection
) -> None:
    db.execute("ALTER TABLE readings ADD CONSTRAINT no_13 CHECK (value <> 13.0)")
    try:
        res = writer.write([msg("n-1", 20, NOW - 20, air_t=13.0), msg("n-1", 21, NOW - 10, air_t=14.0)])
    finally:
        db.execute("ALTER TABLE readings DROP CONSTRAINT no_13")
    assert res.stored == 1 and res.rejected["store_error"] == 1
    assert ("n-1", "air_t", NOW - 10) in stored(db_url, "farm-w")
    detail = db.execute("SELECT detail FROM rejects WHERE reason = 'store_error'").fetchone()
    assert detail is not None and "no_13" in detail[0]


def test_unreachable_database_is_an_operational_state_not_a_crash(writer: Writer) -> None:
    w = Writer("postgresql://agri:x@127.0.0.1:1/agri", connect_timeout=1)
    with pytest.raises(StoreUnavailable):
        w.write([msg("n-1", 0)])


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.lists(node_messages, min_size=1, max_size=5), st.binary(max_size=64))
def test_fuzzed_messages_never_break_a_batch(
    writer: Writer, objs: list[dict[str, object]], junk: bytes
) -> None:
    lim = Limits(now=time.time())
    batch = [
        decode_message("agri/v1/farm-w/n-1/up", json.dumps(o, ensure_ascii=True).encode(), lim) for o in objs
    ]
    batch.append(decode_message("agri/v1/farm-w/n-2/up", junk, lim))
    batch.append(msg("n-2", 1000 + len(junk), NOW - 5000 + len(junk)))  # a good one next to them
    res = writer.write(batch)
    assert "store_error" not in res.rejected
    assert res.messages >= 1
