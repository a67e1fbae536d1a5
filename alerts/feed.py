"""Tail ingest's committed-batch log (``alert_feed``) without ever skipping a late commit.

A feed row is written in the ingest batch's own transaction, so it is visible exactly when its
readings are. Row ids come from a sequence and concurrent transactions commit out of order, so an id
cursor could pass a row whose transaction commits later. Instead the cursor is (xid, id) and only
rows whose transaction id lies below the oldest still-running transaction
(``pg_snapshot_xmin(pg_current_snapshot())``) are read: no new row can ever appear below that
horizon, so everything up to the cursor is final.

Scale-out: worker ``i`` of ``n`` evaluates the farms with ``hashtext(farm_id) mod n = i``; every
worker reads the (small) feed rows, each reads back only its farms' readings, and each keeps its
own cursor row (``alert_cursors.worker = 'i/n'``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from alerts.engine import Block
from alerts.windows import from_send

FeedRow = tuple[str, int, list[int], list[Any], list[Any], int]

# Feed rows per evaluation transaction (a backlog is worked through in steps).
CHUNK_ROWS = 200


@dataclass(frozen=True)
class Partition:
    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"partition {self.index}/{self.count}: need 0 <= index < count")

    @property
    def name(self) -> str:
        return f"{self.index}/{self.count}"


def lock_cursor(conn: psycopg.Connection[Any], part: Partition) -> tuple[str, int]:
    """The partition's cursor, row-locked for this transaction (created at the start)."""
    conn.execute(
        "INSERT INTO alert_cursors (worker) VALUES (%s) ON CONFLICT (worker) DO NOTHING", (part.name,)
    )
    row = conn.execute(
        "SELECT last_xid::text, last_id FROM alert_cursors WHERE worker = %s FOR UPDATE", (part.name,)
    ).fetchone()
    assert row is not None
    return str(row[0]), int(row[1])


def horizon(conn: psycopg.Connection[Any]) -> str:
    row = conn.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text").fetchone()
    assert row is not None
    return str(row[0])


def next_rows(
    conn: psycopg.Connection[Any], cursor: tuple[str, int], limit_xid: str, limit: int = CHUNK_ROWS
) -> list[FeedRow]:
    """Final feed rows after ``cursor``: (xid, id, node pks, range starts, range ends)."""
    # ORDER BY names the table's columns: a bare ``xid`` there would sort by the output column
    # ``xid::text`` ('1000' < '999'), so a chunk spanning xids of different lengths came back out of
    # order and the cursor re-read some rows and skipped others.
    rows = conn.execute(
        "SELECT f.xmin::text, f.id, f.node_ids, f.t_from, f.t_to, f.xid::text AS xid_text FROM alert_feed f"
        " WHERE (f.xid, f.id) > (%s::xid8, %s) AND f.xid < %s::xid8 ORDER BY f.xid, f.id LIMIT %s",
        (cursor[0], cursor[1], limit_xid, limit),
    ).fetchall()
    # (xid8 of the transaction, id, nodes, starts, ends, xmin the batch's readings carry)
    return [(str(x8), int(i), list(n), list(a), list(b), int(xm)) for xm, i, n, a, b, x8 in rows]


def save_cursor(conn: psycopg.Connection[Any], part: Partition, cursor: tuple[str, int]) -> None:
    conn.execute(
        "UPDATE alert_cursors SET last_xid = %s::xid8, last_id = %s, updated_at = now() WHERE worker = %s",
        (cursor[0], cursor[1], part.name),
    )


def read_readings(
    conn: psycopg.Connection[Any],
    feed: list[FeedRow],
    part: Partition,
) -> list[Block]:
    """The readings the feed rows' transactions stored, of this partition's farms: one block per
    series (in series order), its readings in time order.

    Exact: within each node's time range only rows whose ``xmin`` is the feed row's own (the writer
    inserts both in the same subtransaction; a redelivered duplicate keeps the xmin of the batch that
    first stored it), so every stored reading is read once however the ranges of batches overlap.
    """
    nodes: list[int] = []
    lo: list[Any] = []
    hi: list[Any] = []
    xids: list[int] = []
    for _, _, n, a, b, xm in feed:
        nodes += n
        lo += a
        hi += b
        xids += [xm] * len(n)
    if not nodes:
        return []
    with conn.cursor(binary=True) as cur:
        cur.execute(
            # One index range scan per series of each node in the chunk: the node's time range over
            # the chunk's batches, only rows of those batches' transactions (xmin). Times and values
            # come as one bytea each per series (big-endian int8 microseconds since 2000, float8):
            # numpy reads them as they are, with no Python object per reading. 620,000 readings took
            # 1.9 s as a join sorted per series (a plan that read each series' whole history) and
            # 0.4 s this way.
            "WITH f AS (SELECT node, min(lo) AS lo, max(hi) AS hi, array_agg(x) AS xs"
            " FROM unnest(%b::int[], %b::timestamptz[], %b::timestamptz[], %b::bigint[])"
            " AS u(node, lo, hi, x) GROUP BY node)"
            " SELECT s.id, n.id, n.farm_id, n.node_id, s.metric, n.source, a.ts, a.vs FROM f"
            " JOIN nodes n ON n.id = f.node AND (hashtext(n.farm_id)::bigint & 2147483647) %% %s = %s"
            " JOIN series s ON s.node_id = n.id"
            " CROSS JOIN LATERAL (SELECT string_agg(timestamptz_send(r.time), ''::bytea) AS ts,"
            " string_agg(float8send(r.value), ''::bytea) AS vs FROM readings r"
            " WHERE r.series_id = s.id AND r.time BETWEEN f.lo - interval '1 ms' AND f.hi + interval '1 ms'"
            " AND r.xmin::text::bigint = ANY(f.xs)) a WHERE a.ts IS NOT NULL",
            (nodes, lo, hi, xids, part.count, part.index),
        )
        out = [
            Block(sid, pk, farm, node, metric, *from_send(ts, vs), source == "sensor")
            for sid, pk, farm, node, metric, source, ts, vs in cur
        ]
    out.sort(key=_series_id)
    return out


def _series_id(b: Block) -> int:
    return b.series_id


def purge(conn: psycopg.Connection[Any]) -> int:
    """Delete feed rows every partition has passed (the slowest cursor bounds it)."""
    cur = conn.execute(
        "DELETE FROM alert_feed WHERE (xid, id) <= (SELECT last_xid, last_id FROM alert_cursors"
        " ORDER BY last_xid, last_id LIMIT 1) AND created_at < now() - interval '1 minute'"
    )
    return max(cur.rowcount, 0)
