"""Field blocks: import from GeoJSON / KML into the registry, all or nothing."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import psycopg
from shapely.geometry import shape

from kernel.log import event, get_logger
from sky.errors import InputError
from sky.geometry import ValidBlock, parse_blocks_file, validate_features
from store import sky as store_sky
from store.registry import get_farm

log = get_logger("sky")


def read_blocks(
    text: str,
    source: str,
    *,
    boundary: dict[str, Any] | None = None,
    farm_point: tuple[float, float] | None = None,
) -> list[ValidBlock]:
    """Parse and validate a block file's text (GeoJSON or KML)."""
    try:
        bound = shape(boundary) if boundary else None
    except (ValueError, TypeError, AttributeError) as exc:
        raise InputError(f"the farm's stored boundary is not a GeoJSON polygon ({exc})") from None
    return validate_features(parse_blocks_file(text, source), source, boundary=bound, farm_point=farm_point)


def import_blocks_text(
    conn: psycopg.Connection[Any], farm_id: str, text: str, source: str
) -> list[ValidBlock]:
    """Validate every feature, then write all blocks in one transaction (nothing on any error)."""
    farm = get_farm(conn, farm_id)
    if farm is None:
        raise InputError(f"farm {farm_id!r} is not registered")
    _, boundary = store_sky.farm_boundary(conn, farm_id)
    point = (farm.lon, farm.lat) if farm.lon is not None and farm.lat is not None else None
    blocks = read_blocks(text, source, boundary=boundary, farm_point=point)
    with conn.transaction():
        store_sky.upsert_blocks(
            conn,
            farm_id,
            [
                store_sky.BlockRow(b.block_id, b.name, b.kind, b.geometry, b.area_m2, b.bbox, b.props)
                for b in blocks
            ],
        )
    event(log, "blocks_imported", farm=farm_id, source=source, blocks=len(blocks), level=logging.INFO)
    return blocks


def import_blocks_file(conn: psycopg.Connection[Any], farm_id: str, path: Path) -> list[ValidBlock]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read ({exc})") from None
    return import_blocks_text(conn, farm_id, text, str(path))
