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

from alerts.engine import Row

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
) -> list[tuple[str, int, list[int], list[Any], list[Any]]]:
    """Final feed rows after ``cursor``: (xid, id, node pks, range starts, range ends)."""
    rows = conn.execute(
        "SELECT xid::text, id, node_ids, t_from, t_to FROM alert_feed"
        " WHERE (xid, id) > (%s::xid8, %s) AND xid < %s::xid8 ORDER BY xid, id LIMIT %s",
        (cursor[0], cursor[1], limit_xid, limit),
    ).fetchall()
    return [(str(x), int(i), list(n), list(a), list(b)) for x, i, n, a, b in rows]


def save_cursor(conn: psycopg.Connection[Any], part: Partition, cursor: tuple[str, int]) -> None:
    conn.execute(
        "UPDATE alert_cursors SET last_xid = %s::xid8, last_id = %s, updated_at = now() WHERE worker = %s",
        (cursor[0], cursor[1], part.name),
    )


def read_readings(
    conn: psycopg.Connection[Any],
    feed: list[tuple[str, int, list[int], list[Any], list[Any]]],
    part: Partition,
) -> list[Row]:
    """The readings the feed rows name, of this partition's farms, by series then time."""
    nodes: list[int] = []
    lo: list[Any] = []
    hi: list[Any] = []
    for _, _, n, a, b in feed:
        nodes += n
        lo += a
        hi += b
    if not nodes:
        return []
    rows = conn.execute(
        "SELECT DISTINCT r.series_id, n.id, n.farm_id, n.node_id, s.metric,"
        " extract(epoch FROM r.time)::float8, r.value"
        " FROM unnest(%s::int[], %s::timestamptz[], %s::timestamptz[]) AS f(node, lo, hi)"
        " JOIN nodes n ON n.id = f.node AND (hashtext(n.farm_id)::bigint & 2147483647) %% %s = %s"
        " JOIN series s ON s.node_id = n.id"
        " JOIN readings r ON r.series_id = s.id"
        " AND r.time BETWEEN f.lo - interval '1 ms' AND f.hi + interval '1 ms'"
        " ORDER BY 1, 6",
        (nodes, lo, hi, part.count, part.index),
    ).fetchall()
    return [
        Row(int(s), int(pk), str(f), str(nd), str(m), float(t), float(v)) for s, pk, f, nd, m, t, v in rows
    ]


def purge(conn: psycopg.Connection[Any]) -> int:
    """Delete feed rows every partition has passed (the slowest cursor bounds it)."""
    cur = conn.execute(
        "DELETE FROM alert_feed WHERE (xid, id) <= (SELECT last_xid, last_id FROM alert_cursors"
        " ORDER BY last_xid, last_id LIMIT 1) AND created_at < now() - interval '1 minute'"
    )
    return max(cur.rowcount, 0)
