"""Readings export, streamed: CSV (COPY passthrough) or Parquet (row group per batch)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from api.deps import Conn, State
from api.errors import AUTH_RESPONSES, INVALID
from api.queries import export, readings
from api.queries.models import SeriesInfo
from api.routers.readings import EndQ, StartQ, Which, localise

router = APIRouter(tags=["readings"], responses={**AUTH_RESPONSES, **INVALID})

MEDIA = {"csv": "text/csv; charset=utf-8", "parquet": "application/vnd.apache.parquet"}


@router.get(
    "/readings/export",
    summary="Export readings as CSV or Parquet, streamed (memory stays flat for any size)",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
            },
            "description": "time, farm, node, metric, value; times in the farm's zone",
        }
    },
)
def export_readings(
    st: State,
    conn: Conn,
    start: StartQ,
    end: EndQ,
    which: Which,
    format: Annotated[Literal["csv", "parquet"], Query(description="File format")] = "csv",
) -> StreamingResponse:
    series = readings.find_series(conn, **which)
    tz = series[0].tz if series else "UTC"
    t0, t1 = localise(start, tz), localise(end, tz)
    readings.check_range(t0, t1)
    make = export.csv_chunks if format == "csv" else export.parquet_chunks
    pool = st.pool

    def stream(items: list[SeriesInfo]) -> Iterator[bytes]:
        # its own connection, held while the body streams (the request's one is returned already)
        with pool.connection() as c:
            yield from make(c, items, t0, t1, tz=tz)

    name = f"readings-{which.get('farm') or 'series'}-{t0:%Y%m%d}-{t1:%Y%m%d}.{format}"
    return StreamingResponse(
        stream(series),
        media_type=MEDIA[format],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
