"""Readings: series, latest values, raw pages, buckets, dead letters, data completeness.

Times without an offset are read in the farm's time zone (``2026-05-01T00:00`` is local midnight).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo

import orjson
from fastapi import APIRouter, Depends, Query, Response

from api.deps import Conn, Reader, farm_access
from api.errors import AUTH_RESPONSES, INVALID, NOT_FOUND
from api.queries import readings
from api.queries.cursor import Recent
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
from api.queries.readings import SeriesFilter
from kernel.protocol import ID_REGEX

router = APIRouter(tags=["readings"], responses={**AUTH_RESPONSES, **INVALID})

FarmQ = Annotated[str | None, Query(pattern=ID_REGEX, description="Farm id")]
NodeQ = Annotated[str | None, Query(pattern=ID_REGEX, description="Node id")]
MetricQ = Annotated[str | None, Query(min_length=1, max_length=64, description="Metric name (catalog)")]
SeriesQ = Annotated[list[int] | None, Query(description="Series ids (repeat the parameter)", max_length=5000)]
StartQ = Annotated[datetime, Query(description="Range start (inclusive); no offset: farm-local time")]
EndQ = Annotated[datetime, Query(description="Range end (exclusive); no offset: farm-local time")]


def localise(t: datetime, tz: str) -> datetime:
    return t.replace(tzinfo=ZoneInfo(tz)) if t.tzinfo is None or t.utcoffset() is None else t


async def series_filter(
    who: Reader, farm: FarmQ = None, node: NodeQ = None, metric: MetricQ = None, series_id: SeriesQ = None
) -> SeriesFilter:
    """The series query parameters every series route takes, limited to the caller's farms."""
    farm_access(who, farm)
    return SeriesFilter(farms=who.farm_list(), farm=farm, node=node, metric=metric, series_ids=series_id)


Which = Annotated[SeriesFilter, Depends(series_filter)]


@router.get("/series", response_model=list[SeriesInfo], summary="Series (node x metric) matching the filters")
def list_series(conn: Conn, which: Which) -> list[SeriesInfo]:
    return readings.find_series(conn, **which)


@router.get("/readings/latest", response_model=list[LatestValue], summary="Newest reading per series")
def latest(conn: Conn, which: Which) -> Response:
    return Response(readings.latest_json(conn, **which), media_type="application/json")


@router.get(
    "/readings/raw", response_model=RawSeries, responses=NOT_FOUND, summary="Raw readings of one series"
)
def raw(
    conn: Conn,
    who: Reader,
    series_id: int,
    start: StartQ,
    end: EndQ,
    limit: Annotated[int, Query(ge=1, le=readings.MAX_RAW_PAGE)] = 10_000,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> RawSeries:
    s = readings.get_series(conn, series_id, farms=who.farm_list())
    return readings.raw(conn, s, localise(start, s.tz), localise(end, s.tz), limit=limit, cursor=cursor)


@router.get(
    "/readings/buckets",
    response_model=list[BucketSeries],
    summary="min / mean / max / count (sum for rain and water) per bucket; 1d = local midnight to midnight",
)
def buckets(conn: Conn, which: Which, start: StartQ, end: EndQ, bucket: Bucket = "1h") -> Response:
    series = readings.find_series(conn, **which)
    if not series:
        return Response(b"[]", media_type="application/json")
    tz = series[0].tz
    frames = readings.bucket_frames(conn, series, localise(start, tz), localise(end, tz), bucket)
    # orjson writes the numpy columns directly (NaN as null): no Python object per bucket. The
    # series of one time zone share one list of bucket starts: it is written once, as a fragment.
    starts: dict[int, orjson.Fragment] = {}
    out = []
    for f in frames:
        d = f.as_dict()
        if id(f.start) not in starts:
            starts[id(f.start)] = orjson.Fragment(orjson.dumps(f.start))
        d["start"] = starts[id(f.start)]
        out.append(d)
    body = orjson.dumps(out, option=orjson.OPT_SERIALIZE_NUMPY)
    return Response(body, media_type="application/json")


async def recent(
    who: Reader,
    farm: FarmQ = None,
    node: NodeQ = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Recent:
    """The query parameters of a newest-first listing (alerts, rejects), limited to the caller's
    farms; times without an offset are UTC."""
    farm_access(who, farm)
    return Recent(
        farms=who.farm_list(),
        farm=farm,
        node=node,
        since=localise(since, "UTC") if since else None,
        until=localise(until, "UTC") if until else None,
        limit=limit,
        cursor=cursor,
    )


Newest = Annotated[Recent, Depends(recent)]


@router.get("/rejects", response_model=Page[Rejected], summary="Rejected readings and messages, newest first")
def rejects(
    conn: Conn, listing: Newest, reason: Annotated[str | None, Query(max_length=64)] = None
) -> Page[Rejected]:
    return readings.rejects(conn, reason=reason, **listing)


@router.get(
    "/completeness", response_model=list[Completeness], summary="Data completeness per node (from seq)"
)
def completeness(conn: Conn, who: Reader, farm: FarmQ = None, node: NodeQ = None) -> list[Completeness]:
    farm_access(who, farm)
    return readings.completeness(conn, farms=who.farm_list(), farm=farm, node=node)
