"""Hourly and daily rollups of ``readings``, maintained by the application.

The Apache edition of TimescaleDB has no continuous aggregates, so:

* every writer of ``readings`` marks the UTC hours it touched in ``rollup_dirty``
  (:func:`mark_dirty`, :func:`mark_range`) **in the same transaction** as its rows;
* :func:`refresh` takes up to ``limit`` marks with ``FOR UPDATE SKIP LOCKED``, deletes them and
  recomputes those hours (``readings_hourly``) and the farm-local days containing them
  (``readings_daily``, keyed by the local date in the farm's time zone), in one transaction.

Why this is right with several ingest workers and late data:

* a mark is written with ``ON CONFLICT DO UPDATE``, which locks an existing mark until the writer
  commits. The refresher skips locked marks, so it never deletes a mark whose readings are not
  committed yet; if the refresher got a mark first, the writer's upsert waits for the refresher's
  commit and then inserts the mark again, so the new readings are rolled up on the next round;
* a writer marks the series of the nodes it has already locked (``FOR NO KEY UPDATE`` in id order in
  ``store.writer``), so two ingest workers never wait on each other's marks;
* one refresher works at a time (a transaction-level advisory lock; others skip the round), so
  an older snapshot can never overwrite a newer day;
* readers (``api.queries.readings``) aggregate the raw rows of hours that are still marked and
  take the rollup for the rest, so an answer is right even before the refresher has run.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

_LOCK_KEY = 0x61677272  # "agrr": one refresher at a time

_MARK = (
    "INSERT INTO rollup_dirty (series_id, hour)"
    " SELECT s, to_timestamp(h * 3600) FROM unnest(%s::int[], %s::bigint[]) AS k(s, h) ORDER BY s, h"
    " ON CONFLICT (series_id, hour) DO UPDATE SET marked_at = EXCLUDED.marked_at"
)


@dataclass(frozen=True, slots=True)
class RefreshResult:
    hours: int  # (series, hour) marks taken and recomputed
    days: int  # (series, local day) rows recomputed
    skipped: bool = False  # another refresher held the lock


def hour_keys(rows: Iterable[tuple[int, float]]) -> set[tuple[int, int]]:
    """(series id, Unix hour number) of each (series id, Unix seconds) pair."""
    return {(sid, int(t // 3600)) for sid, t in rows}


def mark_dirty(conn: psycopg.Connection[Any], keys: Iterable[tuple[int, int]]) -> int:
    """Mark (series id, Unix hour number) pairs for the refresher; call inside the writing transaction."""
    ordered = sorted(set(keys))
    if not ordered:
        return 0
    conn.execute(_MARK, ([k[0] for k in ordered], [k[1] for k in ordered]))
    return len(ordered)


def mark_range(conn: psycopg.Connection[Any], series_ids: list[int], start: datetime, end: datetime) -> int:
    """Mark every hour of ``series_ids`` that has readings in [start, end) (bulk loaders, repairs)."""
    cur = conn.execute(
        "INSERT INTO rollup_dirty (series_id, hour)"
        " SELECT DISTINCT series_id, time_bucket(interval '1 hour', time) FROM readings"
        " WHERE series_id = ANY(%s) AND time >= %s AND time < %s ORDER BY 1, 2"
        " ON CONFLICT (series_id, hour) DO UPDATE SET marked_at = EXCLUDED.marked_at",
        (series_ids, start, end),
    )
    return max(cur.rowcount, 0)


def mark_all(conn: psycopg.Connection[Any]) -> int:
    """Mark every hour that has readings (rebuild all rollups)."""
    cur = conn.execute(
        "INSERT INTO rollup_dirty (series_id, hour)"
        " SELECT DISTINCT series_id, time_bucket(interval '1 hour', time) FROM readings"
        " ON CONFLICT (series_id, hour) DO UPDATE SET marked_at = EXCLUDED.marked_at"
    )
    return max(cur.rowcount, 0)


def mark_farm_days(conn: psycopg.Connection[Any], farm_id: str) -> int:
    """After a farm's time zone changed: drop its daily rows and mark its hours to rebuild them."""
    conn.execute(
        "DELETE FROM readings_daily d USING series s JOIN nodes n ON n.id = s.node_id"
        " WHERE d.series_id = s.id AND n.farm_id = %s",
        (farm_id,),
    )
    cur = conn.execute(
        "INSERT INTO rollup_dirty (series_id, hour)"
        " SELECT h.series_id, h.hour FROM readings_hourly h JOIN series s ON s.id = h.series_id"
        " JOIN nodes n ON n.id = s.node_id WHERE n.farm_id = %s ORDER BY 1, 2"
        " ON CONFLICT (series_id, hour) DO UPDATE SET marked_at = EXCLUDED.marked_at",
        (farm_id,),
    )
    return max(cur.rowcount, 0)


def pending(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT count(*) FROM rollup_dirty").fetchone()
    return int(row[0]) if row else 0


def refresh(conn: psycopg.Connection[Any], limit: int = 20_000) -> RefreshResult:
    """Recompute up to ``limit`` marked hours and their local days; one transaction."""
    if limit < 1:
        raise ValueError("limit must be >= 1")
    with conn.transaction():
        row = conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (_LOCK_KEY,)).fetchone()
        if not row or not row[0]:
            return RefreshResult(0, 0, skipped=True)
        taken = conn.execute(
            "WITH k AS (SELECT series_id, hour FROM rollup_dirty ORDER BY series_id, hour LIMIT %s"
            " FOR UPDATE SKIP LOCKED)"
            " DELETE FROM rollup_dirty d USING k WHERE d.series_id = k.series_id AND d.hour = k.hour"
            " RETURNING d.series_id, d.hour",
            (limit,),
        ).fetchall()
        if not taken:
            return RefreshResult(0, 0)
        sids = [int(r[0]) for r in taken]
        hours = [r[1] for r in taken]
        conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS rollup_keys (s int, hr timestamptz) ON COMMIT DELETE ROWS"
        )
        conn.execute(
            "INSERT INTO rollup_keys SELECT * FROM unnest(%s::int[], %s::timestamptz[])", (sids, hours)
        )
        conn.execute(
            "DELETE FROM readings_hourly h USING rollup_keys k WHERE h.series_id = k.s AND h.hour = k.hr"
        )
        conn.execute(
            "INSERT INTO readings_hourly (series_id, hour, n, sum, min, max, last_time, last_value)"
            " SELECT k.s, k.hr, count(*), sum(r.value), min(r.value), max(r.value), max(r.time),"
            " last(r.value, r.time)"
            " FROM rollup_keys k JOIN readings r"
            " ON r.series_id = k.s AND r.time >= k.hr AND r.time < k.hr + interval '1 hour'"
            " GROUP BY k.s, k.hr"
        )
        # Each touched series' newest hourly row (only this transaction writes readings_hourly).
        conn.execute(
            "DELETE FROM series_latest l WHERE l.series_id IN (SELECT s FROM rollup_keys)"
            " AND NOT EXISTS (SELECT 1 FROM readings_hourly h WHERE h.series_id = l.series_id)"
        )
        conn.execute(
            "INSERT INTO series_latest (series_id, hour, last_time, last_value)"
            " SELECT k.s, h.hour, h.last_time, h.last_value FROM (SELECT DISTINCT s FROM rollup_keys) k"
            " CROSS JOIN LATERAL (SELECT hour, last_time, last_value FROM readings_hourly"
            " WHERE series_id = k.s ORDER BY hour DESC LIMIT 1) h"
            " ON CONFLICT (series_id) DO UPDATE SET hour = EXCLUDED.hour, last_time = EXCLUDED.last_time,"
            " last_value = EXCLUDED.last_value"
        )
        # The local day(s) each hour falls in (two when the zone's offset is not whole hours).
        conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS rollup_days (s int, day date, tz text) ON COMMIT DELETE ROWS"
        )
        conn.execute(
            "INSERT INTO rollup_days SELECT DISTINCT k.s, ((k.hr + v.o) AT TIME ZONE f.tz)::date, f.tz"
            " FROM rollup_keys k JOIN series se ON se.id = k.s JOIN nodes n ON n.id = se.node_id"
            " JOIN farms f ON f.id = n.farm_id"
            " CROSS JOIN (VALUES (interval '0'), (interval '1 hour' - interval '1 microsecond')) AS v(o)"
        )
        conn.execute(
            "DELETE FROM readings_daily d USING rollup_days k WHERE d.series_id = k.s AND d.day = k.day"
        )
        cur = conn.execute(
            "INSERT INTO readings_daily (series_id, day, tz, n, sum, min, max)"
            " SELECT k.s, k.day, k.tz, count(*), sum(r.value), min(r.value), max(r.value)"
            " FROM rollup_days k JOIN readings r ON r.series_id = k.s"
            " AND r.time >= (k.day::timestamp AT TIME ZONE k.tz)"
            " AND r.time < ((k.day + 1)::timestamp AT TIME ZONE k.tz)"
            " GROUP BY k.s, k.day, k.tz"
        )
        days = max(cur.rowcount, 0)
    return RefreshResult(len(taken), days)


def refresh_all(conn: psycopg.Connection[Any], limit: int = 20_000) -> RefreshResult:
    """Refresh until no mark is left (tests, benchmarks, `agri api --refresh-once`)."""
    hours = days = 0
    while True:
        res = refresh(conn, limit)
        hours += res.hours
        days += res.days
        if res.skipped or res.hours == 0:
            return RefreshResult(hours, days, skipped=res.skipped)
