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
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypedDict, Unpack
from zoneinfo import ZoneInfo

import numpy as np
import orjson
import psycopg
from numpy.typing import NDArray
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


class SeriesFilter(TypedDict, total=False):
    """Which series (a farm or series ids at least); ``farms``: the farms a token is limited to."""

    farms: Sequence[str] | None
    farm: str | None
    node: str | None
    metric: str | None
    series_ids: Sequence[int] | None


def _series_filter(which: SeriesFilter) -> tuple[sql.Composable, list[Any]]:
    farms, farm, node = which.get("farms"), which.get("farm"), which.get("node")
    metric, series_ids = which.get("metric"), which.get("series_ids")
    if farm is None and not series_ids:
        raise InvalidArgument("give a farm or series ids", field="farm")
    if metric is not None and metric not in CATALOG:
        raise InvalidArgument(f"unknown metric {metric!r}", field="metric")
    return cursors.where(
        ("n.farm_id = ANY(%s)", list(farms) if farms is not None else None),
        ("n.farm_id = %s", farm),
        ("n.node_id = %s", node),
        ("s.metric = %s", metric),
        ("s.id = ANY(%s)", list(series_ids) if series_ids else None),
    )


def find_series(conn: Conn, **which: Unpack[SeriesFilter]) -> list[SeriesInfo]:
    """Series matching the filters, ordered by id; at least a farm or series ids must be given."""
    conds, params = _series_filter(which)
    q = sql.SQL("{} WHERE {} ORDER BY s.id").format(_SERIES_SELECT, conds)
    with conn.cursor(row_factory=dict_row) as cur:
        return [SeriesInfo(**r) for r in cur.execute(q, params).fetchall()]


def get_series(conn: Conn, series_id: int, *, farms: Sequence[str] | None = None) -> SeriesInfo:
    found = find_series(conn, farms=farms, series_ids=[series_id])
    if not found:
        raise NotFound(f"series {series_id} not found", field="series_id")
    return found[0]


# --- latest ---------------------------------------------------------------------------------------


# The newest rollup hour of each series with that hour's last reading (``series_latest``, kept by
# the refresher with the hourly rows) and its newest dirty mark (one index probe per series);
# nothing planned over the chunks of ``readings``.
_LATEST_ROLLUP = sql.SQL(
    "SELECT s.id, n.farm_id, n.node_id, s.metric, m.unit, h.hour, h.last_time, h.last_value,"
    " d.hour AS mark"
    " FROM series s JOIN nodes n ON n.id = s.node_id JOIN metrics m ON m.name = s.metric"
    " LEFT JOIN series_latest h ON h.series_id = s.id"
    " LEFT JOIN LATERAL (SELECT dd.hour FROM rollup_dirty dd WHERE dd.series_id = s.id"
    " ORDER BY dd.hour DESC LIMIT 1) d ON true"
    " WHERE {}"
)

# The same as one JSON text built by the server (the API's answer: no Python object per series),
# with the series whose newest mark is at or after their newest rollup hour, and those marks.
_LATEST_JSON = sql.SQL(
    "SELECT coalesce(json_agg(json_build_object('series_id', b.id, 'farm_id', b.farm_id,"
    " 'node_id', b.node_id, 'metric', b.metric, 'unit', b.unit, 'time', b.last_time,"
    " 'value', b.last_value) ORDER BY b.id), '[]')::text,"
    " array_agg(b.id) FILTER (WHERE b.stale), array_agg(b.mark) FILTER (WHERE b.stale)"
    " FROM (SELECT *, mark IS NOT NULL AND (hour IS NULL OR mark >= hour) AS stale FROM ({}) a) b"
)

# The newest raw reading of the series written since the refresher's last round, at or after their
# newest mark. The oldest of those marks is a constant, so the planner keeps only the chunks of
# ``readings`` after it (planning the probe over every chunk took longer than running it).
_LATEST_RAW = sql.SQL(
    "SELECT k.sid, r.time, r.value FROM unnest(%s::int[], %s::timestamptz[]) AS k(sid, since)"
    " CROSS JOIN LATERAL (SELECT x.time, x.value FROM readings x WHERE x.series_id = k.sid"
    " AND x.time >= k.since AND x.time >= {floor} ORDER BY x.time DESC LIMIT 1) r"
)


def _fresh(conn: Conn, sids: Sequence[int], marks: Sequence[datetime]) -> dict[int, tuple[datetime, float]]:
    """The newest raw reading of each series at or after its mark (series not rolled up yet)."""
    if not sids:
        return {}
    q = _LATEST_RAW.format(floor=sql.Literal(min(marks)))
    return {sid: (t, v) for sid, t, v in conn.execute(q, (list(sids), list(marks))).fetchall()}


def latest(conn: Conn, **which: Unpack[SeriesFilter]) -> list[LatestValue]:
    """The newest reading of each matching series (time and value null if it has none).

    The same answer as ``registry.LATEST_OF`` in two statements: the rollups' newest hour and the
    newest dirty mark of every series, then one raw probe only for the series with a mark at or
    after their newest rollup hour. A mark committed between the two is data that arrived just
    after the first: the answer is the one a request made a moment earlier would get.
    """
    conds, params = _series_filter(which)
    q = sql.SQL("{} ORDER BY s.id").format(_LATEST_ROLLUP.format(conds))
    rows = conn.execute(q, params).fetchall()
    stale = [(r[0], r[8]) for r in rows if r[8] is not None and (r[5] is None or r[8] >= r[5])]
    fresh = _fresh(conn, [k for k, _ in stale], [h for _, h in stale])
    construct = LatestValue.model_construct
    out = []
    for sid, farm_id, node_id, metric_, unit, _hour, last_time, last_value, _mark in rows:
        t, v = fresh.get(sid, (last_time, last_value))
        out.append(
            construct(
                series_id=sid, farm_id=farm_id, node_id=node_id, metric=metric_, unit=unit, time=t, value=v
            )
        )
    return out


def latest_json(conn: Conn, **which: Unpack[SeriesFilter]) -> bytes:
    """:func:`latest` as the JSON array the API sends (``list[LatestValue]``), built by the
    database; only the series not rolled up yet are patched in Python."""
    conds, params = _series_filter(which)
    q = _LATEST_JSON.format(_LATEST_ROLLUP.format(conds))
    row = conn.execute(q, params).fetchone()
    assert row is not None  # an aggregate: always one row
    text, sids, marks = row
    fresh = _fresh(conn, sids or [], marks or [])
    if not fresh:
        return str(text).encode()
    items = orjson.loads(text)
    for it in items:
        got = fresh.get(it["series_id"])
        if got is not None:
            it["time"], it["value"] = got
    return orjson.dumps(items)


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

# Every bucket query yields rows (series_id int4, bucket start epoch int8, n int4, sum, min, max
# float8). They come back as ONE bytea: each row packed server-side into a fixed 40-byte big-endian
# record (``int4send || int8send || ...``, one ``string_agg``), which numpy reads as a structured
# array. One protocol message instead of one per bucket (72,000 for 100 series x 30 days) and no
# Python object per row or per value; one aggregate per row instead of five, and no GROUP BY.
_HOURLY = sql.SQL(
    "SELECT h.series_id, extract(epoch FROM h.hour)::int8, h.n, h.sum, h.min, h.max"
    " FROM readings_hourly h WHERE h.series_id = ANY({sids}) AND h.hour >= {start} AND h.hour < {end}"
    " AND NOT EXISTS (SELECT 1 FROM rollup_dirty d WHERE d.series_id = h.series_id AND d.hour = h.hour)"
    " UNION ALL"
    " SELECT d.series_id, extract(epoch FROM d.hour)::int8, count(*)::int4, sum(r.value), min(r.value),"
    " max(r.value) FROM rollup_dirty d JOIN readings r ON r.series_id = d.series_id AND r.time >= d.hour"
    " AND r.time < d.hour + interval '1 hour' AND r.time >= {start} AND r.time < {end}"
    " WHERE d.series_id = ANY({sids}) AND d.hour >= {start} AND d.hour < {end}"
    " GROUP BY d.series_id, d.hour"
)

# The same answer when no hour of the range is marked (the usual case for anything older than the
# refresher's last round): an index-only range scan, without the anti-join against the marks and
# without planning the raw branch over every chunk of ``readings``.
_HOURLY_CLEAN = sql.SQL(
    "SELECT h.series_id, extract(epoch FROM h.hour)::int8, h.n, h.sum, h.min, h.max"
    " FROM readings_hourly h WHERE h.series_id = ANY({sids}) AND h.hour >= {start} AND h.hour < {end}"
)

_ANY_DIRTY = sql.SQL(
    "SELECT EXISTS (SELECT 1 FROM rollup_dirty d WHERE d.series_id = ANY({sids})"
    " AND d.hour >= {start} AND d.hour < {end})"
)

_DAILY = sql.SQL(
    "WITH dd AS (SELECT DISTINCT d.series_id, ((d.hour + v.o) AT TIME ZONE {tz})::date AS day"
    " FROM rollup_dirty d CROSS JOIN (VALUES (interval '0'),"
    " (interval '1 hour' - interval '1 microsecond')) AS v(o)"
    " WHERE d.series_id = ANY({sids}) AND d.hour >= {start} - interval '1 hour' AND d.hour < {end})"
    " SELECT r.series_id, extract(epoch FROM (r.day::timestamp AT TIME ZONE {tz}))::int8, r.n, r.sum,"
    " r.min, r.max FROM readings_daily r"
    " WHERE r.series_id = ANY({sids}) AND r.day >= {d0} AND r.day < {d1} AND r.tz = {tz}"
    " AND NOT EXISTS (SELECT 1 FROM dd WHERE dd.series_id = r.series_id AND dd.day = r.day)"
    " UNION ALL"
    " SELECT dd.series_id, extract(epoch FROM (dd.day::timestamp AT TIME ZONE {tz}))::int8, count(*)::int4,"
    " sum(x.value), min(x.value), max(x.value) FROM dd"
    " JOIN readings x ON x.series_id = dd.series_id AND x.time >= (dd.day::timestamp AT TIME ZONE {tz})"
    " AND x.time < ((dd.day + 1)::timestamp AT TIME ZONE {tz})"
    " AND x.time >= {start} AND x.time < {end}"
    " WHERE dd.day >= {d0} AND dd.day < {d1} GROUP BY dd.series_id, dd.day"
)

_RAW_BUCKETS = sql.SQL(
    "SELECT series_id, extract(epoch FROM time_bucket({width}, time))::int8 AS b, count(*)::int4,"
    " sum(value), min(value), max(value) FROM readings"
    " WHERE series_id = ANY({sids}) AND time >= {start} AND time < {end} GROUP BY series_id, b"
)

_PACKED = sql.SQL(
    "SELECT string_agg(int4send(series_id) || int8send(t) || int4send(n) || float8send(sm)"
    " || float8send(mn) || float8send(mx), '') FROM ({}) AS x(series_id, t, n, sm, mn, mx)"
)
_RECORD = np.dtype(
    [("sid", ">i4"), ("t", ">i8"), ("n", ">i4"), ("sum", ">f8"), ("min", ">f8"), ("max", ">f8")]
)
_NATIVE = {
    "sid": np.int64,
    "t": np.int64,
    "n": np.int64,
    "sum": np.float64,
    "min": np.float64,
    "max": np.float64,
}


def _fetch_columns(conn: Conn, query: sql.Composed) -> dict[str, NDArray[Any]]:
    """The bucket rows of ``query`` as numpy columns sid, t, n, sum, min, max."""
    with conn.cursor(binary=True) as cur:
        row = cur.execute(_PACKED.format(query)).fetchone()
    packed = row[0] if row is not None and row[0] is not None else b""
    rec = np.frombuffer(packed, dtype=_RECORD)
    return {k: rec[k].astype(dt) for k, dt in _NATIVE.items()}


@dataclass(frozen=True, slots=True)
class BucketFrame:
    """Buckets of one series as numpy columns (NaN where a bucket is a gap)."""

    series: SeriesInfo
    bucket: str
    start: list[datetime]
    count: NDArray[np.int64]
    min: NDArray[np.float64]
    mean: NDArray[np.float64]
    max: NDArray[np.float64]
    sum: NDArray[np.float64] | None

    def model(self) -> BucketSeries:
        return BucketSeries.model_construct(
            series=self.series,
            bucket=self.bucket,
            start=self.start,
            count=self.count.tolist(),
            min=_nullable(self.min),
            mean=_nullable(self.mean),
            max=_nullable(self.max),
            sum=_nullable(self.sum) if self.sum is not None else None,
        )

    def as_dict(self) -> dict[str, Any]:
        """For orjson (``OPT_SERIALIZE_NUMPY``: NaN becomes null), the same shape as the model."""
        return {
            "series": self.series.model_dump(),
            "bucket": self.bucket,
            "start": self.start,
            "count": self.count,
            "min": self.min,
            "mean": self.mean,
            "max": self.max,
            "sum": self.sum,
        }


def _nullable(a: NDArray[np.float64]) -> list[float | None]:
    o = a.astype(object)
    o[np.isnan(a)] = None
    out: list[float | None] = o.tolist()
    return out


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


def bucket_frames(
    conn: Conn, series: Sequence[SeriesInfo], start: datetime, end: datetime, bucket: str
) -> list[BucketFrame]:
    """:func:`buckets` as numpy columns (the API serialises these without Python objects per value)."""
    check_range(start, end)
    if bucket != "1d" and bucket not in BUCKET_SECONDS:
        raise InvalidArgument(f"bucket must be one of {', '.join([*BUCKET_SECONDS, '1d'])}", field="bucket")
    out: dict[int, BucketFrame] = {}
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
        sids = sorted(s.series_id for s in group)
        args: dict[str, sql.Composable] = {
            "sids": sql.Literal(sids),
            "start": sql.Literal(lo),
            "end": sql.Literal(hi),
            "tz": sql.Literal(tzname),
        }
        if bucket == "1h":
            # A mark committed between these two statements is data that arrived just after the
            # check: the answer is the one a request made a moment earlier would get.
            dirty = conn.execute(_ANY_DIRTY.format(**args)).fetchone()
            q = (_HOURLY if dirty is None or dirty[0] else _HOURLY_CLEAN).format(**args)
        elif bucket == "1d":
            q = _DAILY.format(
                **args,
                d0=sql.Literal(starts[0].date()),
                d1=sql.Literal(starts[-1].date() + timedelta(days=1)),
            )
        else:
            q = _RAW_BUCKETS.format(**args, width=sql.Literal(timedelta(seconds=BUCKET_SECONDS[bucket])))
        rows = _fetch_columns(conn, q)
        epochs = np.array([int(t.timestamp()) for t in starts], dtype=np.int64)
        nb, ns = len(starts), len(sids)
        si = np.searchsorted(np.asarray(sids, dtype=np.int64), rows["sid"])
        bi = np.searchsorted(epochs, rows["t"])
        ok = (bi < nb) & (si < ns)
        ok[ok] &= epochs[bi[ok]] == rows["t"][ok]
        si, bi = si[ok], bi[ok]
        rows = {k: v[ok] for k, v in rows.items()}
        count = np.zeros((ns, nb), dtype=np.int64)
        mn, mx, total = (np.full((ns, nb), np.nan) for _ in range(3))
        count[si, bi] = rows["n"]
        mn[si, bi] = rows["min"]
        mx[si, bi] = rows["max"]
        total[si, bi] = rows["sum"]
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = total / count
        row_of = {sid: i for i, sid in enumerate(sids)}
        for s in group:
            i = row_of[s.series_id]
            out[s.series_id] = BucketFrame(
                series=s,
                bucket=bucket,
                start=starts,
                count=count[i],
                min=mn[i],
                mean=mean[i],
                max=mx[i],
                sum=total[i] if s.aggregate == "sum" else None,
            )
    return [out[s.series_id] for s in series if s.series_id in out]


def buckets(
    conn: Conn, series: Sequence[SeriesInfo], start: datetime, end: datetime, bucket: Bucket
) -> list[BucketSeries]:
    """min / mean / max / count (and sum for summed metrics) per bucket of each series."""
    return [f.model() for f in bucket_frames(conn, series, start, end, bucket)]


# --- rejects, completeness ------------------------------------------------------------------------


def rejects(conn: Conn, *, reason: str | None = None, **recent: Unpack[cursors.Recent]) -> Page[Rejected]:
    """Dead letters, newest first."""
    farms, since, until = recent.get("farms"), recent.get("since"), recent.get("until")
    conds = cursors.where(
        ("farm_id = ANY(%s)", None if farms is None else list(farms)),
        ("farm_id = %s", recent.get("farm")),
        ("node_id = %s", recent.get("node")),
        ("reason = %s", reason),
        ("received_at >= %s", aware(since, "since") if since else None),
        ("received_at < %s", aware(until, "until") if until else None),
    )
    return cursors.newest_first(conn, _REJECTS, conds, "id", Rejected, recent)


_REJECTS = sql.SQL(
    "SELECT id, received_at, source, farm_id, node_id, metric, reading_time, reason, detail FROM rejects"
)


def completeness(
    conn: Conn, *, farms: Sequence[str] | None = None, farm: str | None = None, node: str | None = None
) -> list[Completeness]:
    cond, params = cursors.where(
        ("farm_id = ANY(%s)", list(farms) if farms is not None else None),
        ("farm_id = %s", farm),
        ("node_id = %s", node),
    )
    q = sql.SQL(
        "SELECT farm_id, node_id, first_seq, last_seq, msgs_received, msgs_missing, dropped_reported,"
        " completeness FROM node_completeness WHERE {} ORDER BY farm_id, node_id"
    ).format(cond)
    with conn.cursor(row_factory=dict_row) as cur:
        return [Completeness(**r) for r in cur.execute(q, params).fetchall()]
