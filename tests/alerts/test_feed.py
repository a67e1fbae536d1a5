"""The committed-batch feed: written in ingest's transaction, tailed without skipping late commits."""

import time

import psycopg
import pytest

from alerts import feed
from kernel.decode import Decoded, decode_message
from kernel.protocol import Limits, encode_up, up_topic
from store.writer import Writer
from tests.ingest.support import register

pytestmark = pytest.mark.integration
NOW = float(int(time.time()))


def msg(farm: str, node: str, seq: int, t: float, v: float = 20.0) -> Decoded:
    payload = encode_up(node, seq, [(t, {"air_t": v, "air_rh": 55.0})], boot=1)
    return decode_message(up_topic(farm, node), payload, Limits(now=time.time()))


def test_each_stored_batch_logs_one_feed_row_with_node_ranges_and_a_replay_logs_none(db_url: str) -> None:
    register(db_url, "feed-a", ["n-1", "n-2"])
    w = Writer(db_url)
    try:
        with psycopg.connect(db_url, autocommit=True) as conn:
            (before,) = conn.execute("SELECT count(*) FROM alert_feed").fetchone()  # type: ignore[misc]
            batch = [
                msg("feed-a", "n-1", 0, NOW - 90),
                msg("feed-a", "n-1", 1, NOW - 30),
                msg("feed-a", "n-2", 0, NOW),
            ]
            assert w.write(batch).stored == 6
            rows = conn.execute(
                "SELECT n_rows, array_length(node_ids, 1), extract(epoch FROM t_from[1]),"
                " extract(epoch FROM t_to[1]) FROM alert_feed ORDER BY id DESC LIMIT 1"
            ).fetchall()
            assert [tuple(float(x) for x in r) for r in rows] == [(6.0, 2.0, NOW - 90, NOW - 30)]
            assert w.write(batch).stored == 0  # redelivered: nothing new, no feed row
            (after,) = conn.execute("SELECT count(*) FROM alert_feed").fetchone()  # type: ignore[misc]
            assert after == before + 1
    finally:
        w.close()


def test_tailer_never_skips_a_transaction_that_commits_after_a_later_id(db_url: str) -> None:
    """T1 takes the lower id but commits last: the cursor must not pass it while it is in flight."""
    part = feed.Partition()
    with (
        psycopg.connect(db_url) as t1,
        psycopg.connect(db_url) as t2,
        psycopg.connect(db_url, autocommit=True) as tail,
    ):
        with tail.transaction():
            cur = feed.lock_cursor(tail, part)
            hz = feed.horizon(tail)
            for x, i, *_ in feed.next_rows(tail, cur, hz, limit=100_000):
                cur = (x, i)
            feed.save_cursor(tail, part, cur)
        ins = (
            "INSERT INTO alert_feed (node_ids, t_from, t_to, n_rows)"
            " VALUES ('{}', '{}', '{}', %s) RETURNING id"
        )
        (id1,) = t1.execute(ins, (1,)).fetchone()  # type: ignore[misc]
        (id2,) = t2.execute(ins, (2,)).fetchone()  # type: ignore[misc]
        assert id1 < id2
        t2.commit()

        def consume() -> list[int]:
            got: list[int] = []
            with tail.transaction():
                hz = feed.horizon(tail)
                c = feed.lock_cursor(tail, part)
                rows = feed.next_rows(tail, c, hz)
                if rows:
                    feed.save_cursor(tail, part, (rows[-1][0], rows[-1][1]))
                got = [r[1] for r in rows]
            return got

        assert consume() == []  # id2 is committed but T1 (older xid) is still running: wait
        t1.commit()
        assert consume() == [id1, id2]
        assert consume() == []


def test_chunks_follow_numeric_xid_order_across_digit_lengths(db_url: str) -> None:
    """Feed rows of xids 98..103 (two and three digits) tailed two at a time come back once each,
    in transaction order: the cursor compares xids as numbers, so the chunks must be sorted so too
    (sorted as text, '100' < '99', the tailer re-read some rows and skipped others)."""
    part = feed.Partition(0, 1)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("DELETE FROM alert_feed")
        conn.execute("DELETE FROM alert_cursors")
        xids = [103, 98, 100, 99, 102, 101]  # ids in another order than xids
        assert int(feed.horizon(conn)) > 103  # all final (migrating the schema took more xids)
        for x in xids:
            conn.execute(
                "INSERT INTO alert_feed (xid, node_ids, t_from, t_to, n_rows) VALUES (%s::text::xid8,"
                " '{}', '{}', '{}', 1)",
                (x,),
            )
        got: list[int] = []
        for _ in range(10):
            with conn.transaction():
                hz = feed.horizon(conn)
                c = feed.lock_cursor(conn, part)
                rows = feed.next_rows(conn, c, hz, limit=2)
                if not rows:
                    break
                feed.save_cursor(conn, part, (rows[-1][0], rows[-1][1]))
                got += [int(r[0]) for r in rows]
        assert got == sorted(xids)
