"""Field blocks of a farm as GeoJSON, for the dashboard's map (imports: `agri block import`).

A block's imagery statistics are ordinary series of its pseudo nodes ``sat-<block>`` and
``uav-<block>`` (docs/sky.md), served by ``/series`` and ``/readings/*`` like any sensor series.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from api.deps import Conn, Reader, farm_access
from api.errors import AUTH_RESPONSES, INVALID, NOT_FOUND, ApiError
from store import sky as store_sky
from store.registry import get_farm

router = APIRouter(tags=["blocks"], responses={**AUTH_RESPONSES, **INVALID})


@router.get(
    "/farms/{farm}/blocks",
    response_model=dict[str, Any],
    responses=NOT_FOUND,
    summary="The farm's field blocks (GeoJSON FeatureCollection, WGS 84) with the nodes placed in each",
)
def list_blocks(conn: Conn, who: Reader, farm: str) -> dict[str, Any]:
    farm_access(who, farm)
    if get_farm(conn, farm) is None:
        raise ApiError(404, "not_found", f"farm {farm!r} is not registered")
    features = []
    for b in store_sky.list_blocks(conn, farm):
        features.append(
            {
                "type": "Feature",
                "id": b.block_id,
                "geometry": b.geometry,
                "bbox": list(b.bbox),
                "properties": {
                    "name": b.name,
                    "kind": b.kind,
                    "area_m2": round(b.area_m2, 1),
                    "nodes": store_sky.block_nodes(conn, farm, b.block_id),
                    "imagery_nodes": {
                        s: store_sky.pseudo_node_id(b.block_id, s) for s in ("satellite", "drone")
                    },
                },
            }
        )
    return {"type": "FeatureCollection", "features": features}


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
    o = store_sky.get_overlay(conn, farm, index, source)
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
