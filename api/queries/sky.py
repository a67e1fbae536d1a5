"""A farm's field blocks (GeoJSON) and its latest imagery overlay, HTTP-free: the blocks router and
the dashboard's farm map read the same functions (docs/sky.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

from api.queries.errors import InvalidArgument, NotFound
from store import blockgeo
from store import sky as store_sky
from store.registry import get_farm
from store.sky import Block, Overlay

Conn = psycopg.Connection[Any]
SOURCES = ("satellite", "drone")
__all__ = [
    "Block",
    "Overlay",
    "block_features",
    "import_blocks",
    "latest_block_values",
    "latest_overlay",
    "list_blocks",
]
MAX_BLOCK_FILE_BYTES = 20 * 1024 * 1024


def block_features(conn: Conn, farm_id: str) -> dict[str, Any]:
    """The farm's blocks as a GeoJSON FeatureCollection (WGS 84): name, kind, area, the sensor
    nodes placed in each and its imagery pseudo node ids."""
    if get_farm(conn, farm_id) is None:
        raise NotFound(f"farm {farm_id!r} is not registered", field="farm")
    features = []
    for b in store_sky.list_blocks(conn, farm_id):
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
                    "nodes": store_sky.block_nodes(conn, farm_id, b.block_id),
                    "imagery_nodes": {s: store_sky.pseudo_node_id(b.block_id, s) for s in SOURCES},
                },
            }
        )
    return {"type": "FeatureCollection", "features": features}


def latest_overlay(
    conn: Conn, farm_id: str, index: str = "ndvi", source: str | None = None
) -> Overlay | None:
    """The farm's stored colour-mapped ``index`` image (newest over both sources unless one is
    named): PNG bytes, WGS 84 bounds, acquisition time, the values at the ramp's ends."""
    return store_sky.get_overlay(conn, farm_id, index, source)


def list_blocks(conn: Conn, farm_id: str | None = None) -> list[Block]:
    """The blocks of one farm, or of every farm."""
    return store_sky.list_blocks(conn, farm_id)


def latest_block_values(
    conn: Conn, farm_id: str | None = None, metric: str = "ndvi_mean"
) -> dict[tuple[str, str], tuple[datetime, float]]:
    """(farm id, block id) -> (time, value) of the newest ``metric`` reading of the block's imagery
    pseudo nodes (satellite or drone, whichever is newer); one farm's blocks or every farm's."""
    rows = conn.execute(
        "SELECT DISTINCT ON (n.farm_id, n.block_id) n.farm_id, n.block_id, r.time, r.value FROM readings r"
        " JOIN series s ON s.id = r.series_id JOIN nodes n ON n.id = s.node_id"
        " WHERE (%(farm)s::text IS NULL OR n.farm_id = %(farm)s) AND n.source <> 'sensor'"
        " AND n.block_id IS NOT NULL AND s.metric = %(metric)s"
        " ORDER BY n.farm_id, n.block_id, r.time DESC",
        {"farm": farm_id, "metric": metric},
    ).fetchall()
    return {(str(f), str(b)): (t, float(v)) for f, b, t, v in rows}


def import_blocks(conn: Conn, farm_id: str, data: bytes, filename: str = "blocks") -> list[dict[str, Any]]:
    """A GeoJSON or KML file's polygons as the farm's blocks, all or nothing (the same checks as
    `agri block import`: ``store.blockgeo``); :class:`InvalidArgument` lists every bad feature."""
    if get_farm(conn, farm_id) is None:
        raise NotFound(f"farm {farm_id!r} is not registered", field="farm")
    if not data.strip():
        raise InvalidArgument("empty body: send a GeoJSON FeatureCollection or a KML file", field="body")
    if len(data) > MAX_BLOCK_FILE_BYTES:
        raise InvalidArgument(
            f"{filename}: {len(data)} bytes, more than {MAX_BLOCK_FILE_BYTES} for one block file",
            field="body",
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidArgument(f"{filename}: not UTF-8 text ({exc})", field="body") from None
    try:
        blocks = blockgeo.import_blocks_text(conn, farm_id, text, filename)
    except blockgeo.InputError as exc:
        raise InvalidArgument(str(exc), field="body") from None
    return [
        {"block_id": b.block_id, "name": b.name, "kind": b.kind, "area_m2": round(b.area_m2, 1)}
        for b in blocks
    ]
