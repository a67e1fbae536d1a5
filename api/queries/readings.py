"""Readings: series lookup, latest values, raw pages, buckets from rollups, rejects, completeness.

Buckets of 1 hour come from ``readings_hourly`` and buckets of 1 day (local midnight to local
midnight in the farm's time zone, so 23 or 25 hours on daylight-saving days) from
``readings_daily``; hours still marked dirty are aggregated from the raw rows in the same query
(``store.rollup``), so answers never lag the data. Shorter buckets are computed from the raw rows.
A bucket without readings is returned as a gap (count 0, values null), never interpolated.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from api.queries import cursor as cursors
from api.queries.errors import InvalidArgument, NotFound
from api.queries.models import (
    Bucket,
    BucketSeries,
    Completeness,
    LatestValue,
    Page,
    RawSeries,
    Rejected,
    SeriesInfo,
)
from api.queries.registry import LATEST_OF
from kernel.catalog import CATALOG

Conn = psycopg.Connection[Any]

BUCKET_SECONDS: dict[str, int] = {"1min": 60, "5min": 300, "15min": 900, "30min": 1800, "1h": 3600}
MAX_BUCKETS = 500_000  # buckets x series in one answer
MAX_RAW_PAGE = 50_000

_SERIES_SELECT = sql.SQL(
    "SELECT s.id AS series_id, n.farm_id, n.node_id, s.metric, m.unit, m.aggregate, f.tz"
    " FROM series s JOIN nodes n ON n.id = s.node_id JOIN farms f ON f.id = n.farm_id"
    " JOIN metrics m ON m.name = s.metric"
)


def aware(t: datetime, name: str) -> datetime:
    if t.tzinfo is None or t.utcoffset() is None:
        raise InvalidArgument(f"{name} must carry a time zone (e.g. 2026-05-01T00:00:00+08:00)", field=name)
    return t


def check_range(start: datetime, end: datetime) -> None:
    aware(start, "start")
    aware(end, "end")
    if end <= start:
        raise InvalidArgument("end must be after start", field="end")


def _series_filter(
    *,
    farms: Sequence[str] | None,
    farm: str | None,
    node: str | None,
    metric: str | None,
    series_ids: Sequence[int] | None,
) -> tuple[list[sql.Composable], list[Any]]:
    if farm is None and not series_ids:
        raise InvalidArgument("give a farm or series ids", field="farm")
    if metric is not None and metric not in CATALOG:
        raise InvalidArgument(f"unknown metric {metric!r}", field="metric")
    conds: list[sql.Composable] = []
    params: list[Any] = []
    for cond, value in (
        ("n.farm_id = ANY(%s)", list(farms) if farms is not None else None),
        ("n.farm_id = %s", farm),
        ("n.node_id = %s", node),
        ("s.metric = %s", metric),
        ("s.id = ANY(%s)", list(series_ids) if series_ids else None),
    ):
        if value is not None:
            conds.append(sql.SQL(cond))
            params.append(value)
    return conds, params


def find_series(
    conn: Conn,
    *,
    farms: Sequence[str] | None = None,
    farm: str | None = None,
    node: str | None = None,
    metric: str | None = None,
    series_ids: Sequence[int] | None = None,
) -> list[SeriesInfo]:
    """Series matching the filters, ordered by id; at least a farm or series ids must be given."""
    conds, params = _series_filter(farms=farms, farm=farm, node=node, metric=metric, series_ids=series_ids)
    q = sql.SQL("{} WHERE {} ORDER BY s.id").format(_SERIES_SELECT, sql.SQL(" AND ").join(conds))
    with conn.cursor(row_factory=dict_row) as cur:
        return [SeriesInfo(**r) for r in cur.execute(q, params).fetchall()]


def get_series(conn: Conn, series_id: int, *, farms: Sequence[str] | None = None) -> SeriesInfo:
    found = find_series(conn, farms=farms, series_ids=[series_id])
    if not found:
        raise NotFound(f"series {series_id} not found", field="series_id")
    return found[0]


# --- latest ---------------------------------------------------------------------------------------


def latest(
    conn: Conn,
    *,
    farms: Sequence[str] | None = None,
    farm: str | None = None,
    node: str | None = None,
    metric: str | None = None,
    series_ids: Sequence[int] | None = None,
) -> list[LatestValue]:
    """The newest reading of each matching series (time and value null if it has none).

    One statement: the series lookup and, per series, an index probe bounded by its newest
    rollup hour or mark (see ``registry.LATEST_OF``).
    """
    conds, params = _series_filter(farms=farms, farm=farm, node=node, metric=metric, series_ids=series_ids)
    q = sql.SQL(
        "SELECT s.id, n.farm_id, n.node_id, s.metric, m.unit, l.time, l.value FROM series s"
        " JOIN nodes n ON n.id = s.node_id JOIN metrics m ON m.name = s.metric {} WHERE {} ORDER BY s.id"
    ).format(LATEST_OF.format(sid=sql.SQL("s.id"), alias=sql.Identifier("l")), sql.SQL(" AND ").join(conds))
    construct = LatestValue.model_construct
    return [
        construct(series_id=r[0], farm_id=r[1], node_id=r[2], metric=r[3], unit=r[4], time=r[5], value=r[6])
        for r in conn.execute(q, params).fetchall()
    ]


# --- raw ------------------------------------------------------------------------------------------


def raw(
    conn: Conn,
    series: SeriesInfo,
    start: datetime,
    end: datetime,
    *,
    limit: int = 10_000,
    cursor: str | None = None,
) -> RawSeries:
    """Readings of one series in [start, end), oldest first, ``limit`` per page."""
    check_range(start, end)
    if not 1 <= limit <= MAX_RAW_PAGE:
        raise InvalidArgument(f"limit must be 1..{MAX_RAW_PAGE}", field="limit")
    after = cursors.decode(cursor, 1)
    lo = start
    op = sql.SQL(">=")
    if after is not None:
        try:
            lo = datetime.fromtimestamp(int(after[0]) / 1e6, UTC)
        except (TypeError, ValueError, OverflowError, OSError):
            raise InvalidArgument("cursor is not a cursor this API returned", field="cursor") from None
        op = sql.SQL(">")
    rows = conn.execute(
        sql.SQL(
            "SELECT time, value FROM readings WHERE series_id = %s AND time {} %s AND time >= %s"
            " AND time < %s ORDER BY time LIMIT %s"
        ).format(op),
        (series.series_id, lo, start, end, limit + 1),
    ).fetchall()
    tz = ZoneInfo(series.tz)
    nxt = None
    if len(rows) > limit:
        rows = rows[:limit]
        last: datetime = rows[-1][0]
        nxt = cursors.encode(round(last.timestamp() * 1e6))
    return RawSeries(
        series=series,
        time=[r[0].astimezone(tz) for r in rows],
        value=[float(r[1]) for r in rows],
        next_cursor=nxt,
    )


# --- buckets --------------------------------------------------------------------------------------

_HOURLY = sql.SQL(
    "SELECT h.series_id, extract(epoch FROM h.hour)::bigint, h.n, h.sum, h.min, h.max"
    " FROM readings_hourly h WHERE h.series_id = ANY(%(sids)s) AND h.hour >= %(start)s AND h.hour < %(end)s"
    " AND NOT EXISTS (SELECT 1 FROM rollup_dirty d WHERE d.series_id = h.series_id AND d.hour = h.hour)"
    " UNION ALL"
    " SELECT d.series_id, extract(epoch FROM d.hour)::bigint, count(*)::int, sum(r.value), min(r.value),"
    " max(r.value) FROM rollup_dirty d JOIN readings r ON r.series_id = d.series_id AND r.time >= d.hour"
    " AND r.time < d.hour + interval '1 hour' AND r.time >= %(start)s AND r.time < %(end)s"
    " WHERE d.series_id = ANY(%(sids)s) AND d.hour >= %(start)s AND d.hour < %(end)s"
    " GROUP BY d.series_id, d.hour"
)

_DAILY = sql.SQL(
    "WITH dd AS (SELECT DISTINCT d.series_id, ((d.hour + v.o) AT TIME ZONE %(tz)s)::date AS day"
    " FROM rollup_dirty d CROSS JOIN (VALUES (interval '0'),"
    " (interval '1 hour' - interval '1 microsecond')) AS v(o)"
    " WHERE d.series_id = ANY(%(sids)s) AND d.hour >= %(start)s - interval '1 hour' AND d.hour < %(end)s)"
    " SELECT r.series_id, r.day, r.n, r.sum, r.min, r.max FROM readings_daily r"
    " WHERE r.series_id = ANY(%(sids)s) AND r.day >= %(d0)s AND r.day < %(d1)s AND r.tz = %(tz)s"
    " AND NOT EXISTS (SELECT 1 FROM dd WHERE dd.series_id = r.series_id AND dd.day = r.day)"
    " UNION ALL"
    " SELECT dd.series_id, dd.day, count(*)::int, sum(x.value), min(x.value), max(x.value) FROM dd"
    " JOIN readings x ON x.series_id = dd.series_id AND x.time >= (dd.day::timestamp AT TIME ZONE %(tz)s)"
    " AND x.time < ((dd.day + 1)::timestamp AT TIME ZONE %(tz)s)"
    " AND x.time >= %(start)s AND x.time < %(end)s"
    " WHERE dd.day >= %(d0)s AND dd.day < %(d1)s GROUP BY dd.series_id, dd.day"
)

_RAW_BUCKETS = sql.SQL(
    "SELECT series_id, extract(epoch FROM time_bucket(%(width)s, time))::bigint AS b, count(*)::int,"
    " sum(value), min(value), max(value) FROM readings"
    " WHERE series_id = ANY(%(sids)s) AND time >= %(start)s AND time < %(end)s GROUP BY series_id, b"
)


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """The first instant of ``day`` in ``tz`` (a DST change never falls at midnight in the zones
    served; if one did, the gap's end is taken, as PostgreSQL's ``AT TIME ZONE`` does)."""
    naive = datetime(day.year, day.month, day.day)
    t = naive.replace(tzinfo=tz)
    # round-trip through UTC to normalise a non-existent local time
    return t.astimezone(UTC).astimezone(tz)


def bucket_starts(bucket: str, start: datetime, end: datetime, tz: ZoneInfo) -> list[datetime]:
    """Every bucket start from the bucket containing ``start`` to the last one before ``end``."""
    if bucket == "1d":
        d = start.astimezone(tz).date()
        out = []
        while True:
            t = local_midnight(d, tz)
            if t >= end:
                break
            out.append(t)
            d += timedelta(days=1)
            if len(out) > MAX_BUCKETS:
                break
        return out
    w = BUCKET_SECONDS[bucket]
    e0 = math.floor(start.timestamp() / w) * w
    e1 = end.timestamp()
    n = max(0, math.ceil((e1 - e0) / w))
    if n > MAX_BUCKETS:
        return [start] * (MAX_BUCKETS + 1)  # only the length matters to the caller's check
    return [datetime.fromtimestamp(e0 + i * w, tz) for i in range(n)]


def buckets(
    conn: Conn, series: Sequence[SeriesInfo], start: datetime, end: datetime, bucket: Bucket
) -> list[BucketSeries]:
    """min / mean / max / count (and sum for summed metrics) per bucket of each series."""
    check_range(start, end)
    if bucket != "1d" and bucket not in BUCKET_SECONDS:
        raise InvalidArgument(f"bucket must be one of {', '.join([*BUCKET_SECONDS, '1d'])}", field="bucket")
    out: dict[int, BucketSeries] = {}
    by_tz: dict[str, list[SeriesInfo]] = {}
    for s in series:
        by_tz.setdefault(s.tz, []).append(s)
    for tzname, group in by_tz.items():
        tz = ZoneInfo(tzname)
        starts = bucket_starts(bucket, start, end, tz)
        if len(starts) * len(group) > MAX_BUCKETS:
            raise InvalidArgument(
                f"{len(starts)} buckets x {len(group)} series is more than {MAX_BUCKETS}:"
                " use a longer bucket, a shorter range or fewer series",
                field="bucket",
            )
        if not starts:
            continue
        lo = starts[0]
        if bucket == "1d":
            hi = local_midnight(starts[-1].date() + timedelta(days=1), tz)
        else:
            hi = starts[-1] + timedelta(seconds=BUCKET_SECONDS[bucket])
        sids = [s.series_id for s in group]
        params: dict[str, Any] = {"sids": sids, "start": lo, "end": hi, "tz": tzname}
        keyed: dict[Any, int]
        if bucket == "1h":
            q = _HOURLY
            keyed = {int(t.timestamp()): i for i, t in enumerate(starts)}
        elif bucket == "1d":
            q = _DAILY
            params["d0"] = starts[0].date()
            params["d1"] = starts[-1].date() + timedelta(days=1)
            keyed = {t.date(): i for i, t in enumerate(starts)}
        else:
            q = _RAW_BUCKETS
            params["width"] = timedelta(seconds=BUCKET_SECONDS[bucket])
            keyed = {int(t.timestamp()): i for i, t in enumerate(starts)}
        nb = len(starts)
        cols: dict[
            int,
            tuple[list[int], list[float | None], list[float | None], list[float | None], list[float | None]],
        ]
        cols = {sid: ([0] * nb, [None] * nb, [None] * nb, [None] * nb, [None] * nb) for sid in sids}
        for sid, key, n, total, mn, mx in conn.execute(q, params).fetchall():
            i = keyed.get(key)
            if i is None:
                continue
            c = cols[sid]
            c[0][i] = n
            c[1][i] = mn
            c[2][i] = total / n if n else None
            c[3][i] = mx
            c[4][i] = total
        for s in group:
            cnt, mn_, mean, mx_, tot = cols[s.series_id]
            out[s.series_id] = BucketSeries.model_construct(
                series=s,
                bucket=bucket,
                start=starts,
                count=cnt,
                min=mn_,
                mean=mean,
                max=mx_,
                sum=tot if s.aggregate == "sum" else None,
            )
    return [out[s.series_id] for s in series if s.series_id in out]


# --- rejects, completeness ------------------------------------------------------------------------


def rejects(
    conn: Conn,
    *,
    farms: Sequence[str] | None = None,
    farm: str | None = None,
    node: str | None = None,
    reason: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> Page[Rejected]:
    """Dead letters, newest first."""
    if not 1 <= limit <= 1000:
        raise InvalidArgument("limit must be 1..1000", field="limit")
    conds: list[sql.Composable] = [sql.SQL("true")]
    params: list[Any] = []
    for cond, value in (
        ("farm_id = ANY(%s)", list(farms) if farms is not None else None),
        ("farm_id = %s", farm),
        ("node_id = %s", node),
        ("reason = %s", reason),
        ("received_at >= %s", aware(since, "since") if since else None),
        ("received_at < %s", aware(until, "until") if until else None),
    ):
        if value is not None:
            conds.append(sql.SQL(cond))
            params.append(value)
    after = cursors.decode(cursor, 1)
    if after is not None:
        if not isinstance(after[0], int):
            raise InvalidArgument("cursor is not a cursor this API returned", field="cursor")
        conds.append(sql.SQL("id < %s"))
        params.append(after[0])
    q = sql.SQL(
        "SELECT id, received_at, source, farm_id, node_id, metric, reading_time, reason, detail FROM rejects"
        " WHERE {} ORDER BY id DESC LIMIT %s"
    ).format(sql.SQL(" AND ").join(conds))
    with conn.cursor(row_factory=dict_row) as cur:
        rows = [Rejected(**r) for r in cur.execute(q, [*params, limit + 1]).fetchall()]
    nxt = cursors.encode(rows[limit - 1].id) if len(rows) > limit else None
    return Page[Rejected](items=rows[:limit], next_cursor=nxt)


def completeness(
    conn: Conn, *, farms: Sequence[str] | None = None, farm: str | None = None, node: str | None = None
) -> list[Completeness]:
    conds: list[sql.Composable] = [sql.SQL("true")]
    params: list[Any] = []
    for cond, value in (
        ("farm_id = ANY(%s)", list(farms) if farms is not None else None),
        ("farm_id = %s", farm),
        ("node_id = %s", node),
    ):
        if value is not None:
            conds.append(sql.SQL(cond))
            params.append(value)
    q = sql.SQL(
        "SELECT farm_id, node_id, first_seq, last_seq, msgs_received, msgs_missing, dropped_reported,"
        " completeness FROM node_completeness WHERE {} ORDER BY farm_id, node_id"
    ).format(sql.SQL(" AND ").join(conds))
    with conn.cursor(row_factory=dict_row) as cur:
        return [Completeness(**r) for r in cur.execute(q, params).fetchall()]
