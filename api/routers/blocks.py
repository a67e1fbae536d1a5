"""Field blocks of a farm as GeoJSON, for the dashboard's map (imports: `agri block import`).

A block's imagery statistics are ordinary series of its pseudo nodes ``sat-<block>`` and
``uav-<block>`` (docs/sky.md), served by ``/series`` and ``/readings/*`` like any sensor series.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from api.deps import Conn, Operator, Reader, farm_access
from api.errors import AUTH_RESPONSES, INVALID, NOT_FOUND, ApiError
from api.queries import sky as sky_q

router = APIRouter(tags=["blocks"], responses={**AUTH_RESPONSES, **INVALID})


@router.get(
    "/farms/{farm}/blocks",
    response_model=dict[str, Any],
    responses=NOT_FOUND,
    summary="The farm's field blocks (GeoJSON FeatureCollection, WGS 84) with the nodes placed in each",
)
def list_blocks(conn: Conn, who: Reader, farm: str) -> dict[str, Any]:
    farm_access(who, farm)
    return sky_q.block_features(conn, farm)


@router.post(
    "/farms/{farm}/blocks",
    response_model=list[dict[str, Any]],
    status_code=201,
    responses=NOT_FOUND,
    summary="Import field blocks from a GeoJSON (WGS 84) or KML file, all or nothing",
    description="Send the file as the body (`curl --data-binary @blocks.geojson`). Every feature is"
    " checked first (polygon, not self-intersecting, WGS 84 lon/lat, inside the farm's boundary, near"
    " the farm); any bad one refuses the whole file with a 400 naming each bad feature and why."
    " Blocks with an existing id are replaced.",
)
async def import_blocks(
    request: Request,
    conn: Conn,
    who: Operator,
    farm: str,
    filename: Annotated[str, Query(max_length=200, description="Name of the file, for messages")] = "blocks",
) -> list[dict[str, Any]]:
    farm_access(who, farm)
    data = await request.body()
    blocks: list[dict[str, Any]] = await run_in_threadpool(sky_q.import_blocks, conn, farm, data, filename)
    return blocks


@router.get(
    "/farms/{farm}/overlay",
    responses={
        **NOT_FOUND,
        200: {"content": {"image/png": {}}, "description": "PNG, WGS 84 bounds in headers"},
    },
    summary="The farm's latest colour-mapped index image over its blocks, for a map overlay",
    response_class=Response,
)
def overlay(
    conn: Conn,
    who: Reader,
    farm: str,
    index: Annotated[str, Query(pattern="^(ndvi|ndre|ndwi|evi)$")] = "ndvi",
    source: Annotated[str | None, Query(pattern="^(satellite|drone)$")] = None,
) -> Response:
    """The PNG's outer edges are at ``X-Bounds`` (west,south,east,north in degrees); transparent
    pixels are outside every block or under cloud. Rendered by `agri sky import` / `fetch`."""
    farm_access(who, farm)
    o = sky_q.latest_overlay(conn, farm, index, source)
    if o is None:
        raise ApiError(404, "not_found", f"farm {farm!r} has no {index} image yet")
    headers = {
        "X-Bounds": ",".join(f"{v:.8f}" for v in o.bounds),
        "X-Item": str(o.item_pk),
        "X-Acquired": o.acquired_at.isoformat(),
        "X-Range": f"{o.vmin},{o.vmax}",
        "X-Source": o.source,
    }
    return Response(o.png, media_type="image/png", headers=headers)
