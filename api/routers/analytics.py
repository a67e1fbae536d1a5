"""Analytics on demand: QC flags and anomaly scores of a series; agronomic indices of a farm."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import Conn, Reader, farm_access
from api.errors import AUTH_RESPONSES, INVALID, NOT_FOUND
from api.queries import analytics, readings
from api.queries.analytics import AnomalySeries, FarmIndices, QcSeries
from api.routers.readings import EndQ, StartQ, localise

router = APIRouter(tags=["analytics"], responses={**AUTH_RESPONSES, **INVALID, **NOT_FOUND})


@router.get("/analytics/qc", response_model=QcSeries, summary="QARTOD QC flags of a series over a range")
def qc(conn: Conn, who: Reader, series_id: int, start: StartQ, end: EndQ) -> QcSeries:
    s = readings.get_series(conn, series_id, farms=who.farm_list())
    return analytics.qc(conn, s, localise(start, s.tz), localise(end, s.tz))


@router.get(
    "/analytics/anomaly", response_model=AnomalySeries, summary="Anomaly scores of a series over a range"
)
def anomaly(conn: Conn, who: Reader, series_id: int, start: StartQ, end: EndQ) -> AnomalySeries:
    """Causal anomaly scores of every reading in the range, computed on demand after a 7-day
    warm-up (at a few thousand readings per second, so at most 100,000 readings with the warm-up
    per request; 400 with the count otherwise)."""
    s = readings.get_series(conn, series_id, farms=who.farm_list())
    return analytics.anomaly(conn, s, localise(start, s.tz), localise(end, s.tz))


@router.get(
    "/farms/{farm}/indices",
    response_model=FarmIndices,
    summary="Agronomic indices per local day: ET0, water balance, GDD, chill, frost, THI, disease, dawn DO",
)
def indices(
    conn: Conn,
    who: Reader,
    farm: str,
    first: Annotated[date, Query(description="First local day")],
    last: Annotated[date, Query(description="Last local day (inclusive)")],
    crop: Annotated[
        str | None, Query(max_length=40, description="FAO-56 crop (default by farm kind)")
    ] = None,
    gdd_base_c: Annotated[float, Query(ge=-10, le=40)] = 13.0,
) -> FarmIndices:
    farm_access(who, farm)
    return analytics.farm_indices(
        conn, farm, first, last, farms=who.farm_list(), crop=crop, gdd_base_c=gdd_base_c
    )
