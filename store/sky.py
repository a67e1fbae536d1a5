"""Statements of the sky layer: field blocks, STAC item records, block imagery series and readings.

A block's satellite (or drone) statistics live in ordinary series of a pseudo node per block and
source (``sat-<block>`` / ``uav-<block>``, ``nodes.source`` = satellite / drone), so every query
that works on (farm, node, metric) works on them unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from store import rollup
from store.registry import ensure_series

Source = Literal["satellite", "drone"]
SOURCE_PREFIX: dict[str, str] = {"satellite": "sat", "drone": "uav"}


@dataclass(frozen=True)
class Block:
    farm_id: str
    block_id: str
    name: str
    kind: str
    geometry: dict[str, Any]
    area_m2: float
    bbox: tuple[float, float, float, float]  # west, south, east, north


@dataclass(frozen=True)
class BlockRow:
    """A block as written by an import (geometry already validated)."""

    block_id: str
    name: str
    kind: str
    geometry: dict[str, Any]
    area_m2: float
    bbox: tuple[float, float, float, float]
    props: dict[str, Any]


_BLOCK_COLS = sql.SQL("farm_id, block_id, name, kind, geometry, area_m2, west, south, east, north")


def _block(row: Sequence[Any]) -> Block:
    return Block(row[0], row[1], row[2], row[3], row[4], float(row[5]), (row[6], row[7], row[8], row[9]))


def farm_boundary(conn: psycopg.Connection[Any], farm_id: str) -> tuple[bool, dict[str, Any] | None]:
    """(farm exists, its boundary GeoJSON or None)."""
    row = conn.execute("SELECT boundary FROM farms WHERE id = %s", (farm_id,)).fetchone()
    return (row is not None, row[0] if row else None)


def set_farm_boundary(conn: psycopg.Connection[Any], farm_id: str, geometry: dict[str, Any] | None) -> None:
    cur = conn.execute(
        "UPDATE farms SET boundary = %s WHERE id = %s", (Jsonb(geometry) if geometry else None, farm_id)
    )
    if cur.rowcount != 1:
        raise ValueError(f"farm {farm_id!r} is not registered")


def upsert_blocks(conn: psycopg.Connection[Any], farm_id: str, rows: Iterable[BlockRow]) -> int:
    """Insert or replace blocks of a farm (the caller's transaction makes an import all-or-nothing)."""
    n = 0
    for b in rows:
        conn.execute(
            "INSERT INTO blocks (farm_id, block_id, name, kind, geometry, area_m2, west, south, east, north,"
            " props) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (farm_id, block_id) DO UPDATE SET name = EXCLUDED.name, kind = EXCLUDED.kind,"
            " geometry = EXCLUDED.geometry, area_m2 = EXCLUDED.area_m2, west = EXCLUDED.west,"
            " south = EXCLUDED.south, east = EXCLUDED.east, north = EXCLUDED.north, props = EXCLUDED.props,"
            " updated_at = now()",
            (farm_id, b.block_id, b.name, b.kind, Jsonb(b.geometry), b.area_m2, *b.bbox, Jsonb(b.props)),
        )
        n += 1
    return n


def list_blocks(conn: psycopg.Connection[Any], farm_id: str | None = None) -> list[Block]:
    if farm_id is None:
        rows = conn.execute(
            sql.SQL("SELECT {} FROM blocks ORDER BY farm_id, block_id").format(_BLOCK_COLS)
        ).fetchall()
    else:
        rows = conn.execute(
            sql.SQL("SELECT {} FROM blocks WHERE farm_id = %s ORDER BY block_id").format(_BLOCK_COLS),
            (farm_id,),
        ).fetchall()
    return [_block(r) for r in rows]


def blocks_in_bbox(conn: psycopg.Connection[Any], bbox: tuple[float, float, float, float]) -> list[Block]:
    """Blocks whose bounding box intersects ``bbox`` (west, south, east, north, degrees)."""
    w, s, e, n = bbox
    rows = conn.execute(
        sql.SQL(
            "SELECT {} FROM blocks WHERE west <= %s AND east >= %s AND south <= %s AND north >= %s"
            " ORDER BY farm_id, block_id"
        ).format(_BLOCK_COLS),
        (e, w, n, s),
    ).fetchall()
    return [_block(r) for r in rows]


def place_node(conn: psycopg.Connection[Any], farm_id: str, node_id: str, block_id: str | None) -> None:
    """Put a node in a block of its farm (``None`` takes it out)."""
    if block_id is not None:
        ok = conn.execute(
            "SELECT 1 FROM blocks WHERE farm_id = %s AND block_id = %s", (farm_id, block_id)
        ).fetchone()
        if ok is None:
            raise ValueError(f"farm {farm_id!r} has no block {block_id!r}")
    cur = conn.execute(
        "UPDATE nodes SET block_id = %s WHERE farm_id = %s AND node_id = %s", (block_id, farm_id, node_id)
    )
    if cur.rowcount != 1:
        raise ValueError(f"farm {farm_id!r} has no node {node_id!r}")


def block_nodes(conn: psycopg.Connection[Any], farm_id: str, block_id: str) -> list[str]:
    """Ground sensor nodes placed in a block."""
    rows = conn.execute(
        "SELECT node_id FROM nodes WHERE farm_id = %s AND block_id = %s AND source = 'sensor'"
        " ORDER BY node_id",
        (farm_id, block_id),
    ).fetchall()
    return [r[0] for r in rows]


def pseudo_node_id(block_id: str, source: str) -> str:
    return f"{SOURCE_PREFIX[source]}-{block_id}"


def ensure_block_series(
    conn: psycopg.Connection[Any], farm_id: str, block_id: str, source: str, metrics: Iterable[str]
) -> dict[str, int]:
    """Series ids of a block's imagery metrics from one source, creating node and series as needed."""
    if source not in SOURCE_PREFIX:
        raise ValueError(f"source {source!r} must be satellite or drone")
    node_id = pseudo_node_id(block_id, source)
    row = conn.execute(
        "INSERT INTO nodes (farm_id, node_id, name, profile, block_id, source)"
        " VALUES (%s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (farm_id, node_id) DO UPDATE SET block_id = EXCLUDED.block_id"
        " WHERE nodes.source = EXCLUDED.source RETURNING id",
        (farm_id, node_id, f"{source} {block_id}", f"sky-{source}", block_id, source),
    ).fetchone()
    if row is None:
        raise ValueError(
            f"node {node_id!r} of farm {farm_id!r} is a sensor node; rename it or the block {block_id!r}"
        )
    node_pk = int(row[0])
    return {m: ensure_series(conn, node_pk, m) for m in metrics}


def upsert_readings(conn: psycopg.Connection[Any], rows: Sequence[tuple[int, datetime, float]]) -> int:
    """Write (series id, time, value) rows; reprocessing a scene replaces its earlier values."""
    if not rows:
        return 0
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO readings (series_id, time, value) VALUES (%s, %s, %s)"
            " ON CONFLICT (series_id, time) DO UPDATE SET value = EXCLUDED.value",
            rows,
        )
    # hourly/daily rollups and latest values (store.rollup): mark the hours in this transaction
    rollup.mark_dirty(conn, rollup.hour_keys((sid, t.timestamp()) for sid, t, _ in rows))
    return len(rows)


def upsert_item(
    conn: psycopg.Connection[Any],
    *,
    collection: str,
    item_id: str,
    source: str,
    when: datetime,
    cloud_cover: float | None,
    processing_baseline: str | None,
    bbox: tuple[float, float, float, float] | None,
    href: str | None,
    stac: dict[str, Any],
) -> int:
    w, s, e, n = bbox if bbox else (None, None, None, None)
    row = conn.execute(
        "INSERT INTO sky_items (collection, item_id, source, datetime, cloud_cover, processing_baseline,"
        " west, south, east, north, href, stac) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (collection, item_id) DO UPDATE SET source = EXCLUDED.source,"
        " datetime = EXCLUDED.datetime, cloud_cover = EXCLUDED.cloud_cover,"
        " processing_baseline = EXCLUDED.processing_baseline, west = EXCLUDED.west, south = EXCLUDED.south,"
        " east = EXCLUDED.east, north = EXCLUDED.north, href = EXCLUDED.href, stac = EXCLUDED.stac,"
        " imported_at = now() RETURNING id",
        (collection, item_id, source, when, cloud_cover, processing_baseline, w, s, e, n, href, Jsonb(stac)),
    ).fetchone()
    assert row is not None
    return int(row[0])


def record_block_run(
    conn: psycopg.Connection[Any],
    item_pk: int,
    farm_id: str,
    block_id: str,
    status: str,
    valid_frac: float | None,
    n_pixels: int | None,
) -> None:
    conn.execute(
        "INSERT INTO sky_block_runs (item_id, farm_id, block_id, status, valid_frac, n_pixels)"
        " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (item_id, farm_id, block_id) DO UPDATE SET"
        " status = EXCLUDED.status, valid_frac = EXCLUDED.valid_frac, n_pixels = EXCLUDED.n_pixels,"
        " processed_at = now()",
        (item_pk, farm_id, block_id, status, valid_frac, n_pixels),
    )


def block_runs(
    conn: psycopg.Connection[Any], item_pk: int
) -> dict[tuple[str, str], tuple[str, float | None]]:
    rows = conn.execute(
        "SELECT farm_id, block_id, status, valid_frac FROM sky_block_runs WHERE item_id = %s", (item_pk,)
    ).fetchall()
    return {(f, b): (s, v) for f, b, s, v in rows}


def list_items(
    conn: psycopg.Connection[Any], *, source: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    where = sql.SQL("WHERE source = %s") if source else sql.SQL("")
    q = sql.SQL(
        "SELECT id, collection, item_id, source, datetime, cloud_cover, processing_baseline, href, stac"
        " FROM sky_items {} ORDER BY datetime DESC LIMIT %s"
    ).format(where)
    params: tuple[Any, ...] = (source, limit) if source else (limit,)
    cols = (
        "pk",
        "collection",
        "item_id",
        "source",
        "datetime",
        "cloud_cover",
        "processing_baseline",
        "href",
        "stac",
    )
    return [dict(zip(cols, r, strict=True)) for r in conn.execute(q, params).fetchall()]


def latest_item_for_farm(
    conn: psycopg.Connection[Any], farm_id: str, source: str | None = None
) -> int | None:
    """The newest item with stored statistics for some block of the farm."""
    q = sql.SQL(
        "SELECT i.id FROM sky_items i JOIN sky_block_runs r ON r.item_id = i.id"
        " WHERE r.farm_id = %s AND r.status = 'stored' {} ORDER BY i.datetime DESC LIMIT 1"
    ).format(sql.SQL("AND i.source = %s") if source else sql.SQL(""))
    params: tuple[Any, ...] = (farm_id, source) if source else (farm_id,)
    row = conn.execute(q, params).fetchone()
    return int(row[0]) if row else None


def get_item(conn: psycopg.Connection[Any], item_pk: int) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT id, collection, item_id, source, datetime, href, stac FROM sky_items WHERE id = %s",
        (item_pk,),
    ).fetchone()
    if row is None:
        return None
    return dict(zip(("pk", "collection", "item_id", "source", "datetime", "href", "stac"), row, strict=True))


def block_series(
    conn: psycopg.Connection[Any],
    farm_id: str,
    block_id: str,
    metric: str,
    *,
    source: str = "satellite",
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[tuple[datetime, float]]:
    """(time, value) of one imagery metric of a block, oldest first."""
    if source not in SOURCE_PREFIX:
        raise ValueError(f"source {source!r} must be satellite or drone")
    conds = [sql.SQL("n.farm_id = %s"), sql.SQL("n.node_id = %s"), sql.SQL("s.metric = %s")]
    params: list[Any] = [farm_id, pseudo_node_id(block_id, source), metric]
    if start is not None:
        conds.append(sql.SQL("r.time >= %s"))
        params.append(start)
    if end is not None:
        conds.append(sql.SQL("r.time < %s"))
        params.append(end)
    q = sql.SQL(
        "SELECT r.time, r.value FROM readings r JOIN series s ON s.id = r.series_id"
        " JOIN nodes n ON n.id = s.node_id WHERE {} ORDER BY r.time"
    ).format(sql.SQL(" AND ").join(conds))
    return [(t, float(v)) for t, v in conn.execute(q, params).fetchall()]


def farm_index_dates(
    conn: psycopg.Connection[Any], farm_id: str, metric: str, source: str = "satellite", limit: int = 2
) -> list[datetime]:
    """The newest dates (newest first) on which some block of the farm has ``metric``."""
    rows = conn.execute(
        "SELECT DISTINCT r.time FROM readings r JOIN series s ON s.id = r.series_id"
        " JOIN nodes n ON n.id = s.node_id WHERE n.farm_id = %s AND n.source = %s AND s.metric = %s"
        " ORDER BY r.time DESC LIMIT %s",
        (farm_id, source, metric, limit),
    ).fetchall()
    return [r[0] for r in rows]


def farm_index_on(
    conn: psycopg.Connection[Any], farm_id: str, metric: str, when: datetime, source: str = "satellite"
) -> dict[str, float]:
    """Block id -> value of ``metric`` at ``when``."""
    rows = conn.execute(
        "SELECT n.block_id, r.value FROM readings r JOIN series s ON s.id = r.series_id"
        " JOIN nodes n ON n.id = s.node_id WHERE n.farm_id = %s AND n.source = %s AND s.metric = %s"
        " AND r.time = %s",
        (farm_id, source, metric, when),
    ).fetchall()
    return {b: float(v) for b, v in rows}


def block_soil_vwc(
    conn: psycopg.Connection[Any], farm_id: str, start: datetime, end: datetime
) -> dict[str, float]:
    """Block id -> mean soil moisture (%) of the sensor nodes placed in it over [start, end)."""
    rows = conn.execute(
        "SELECT n.block_id, avg(r.value) FROM readings r JOIN series s ON s.id = r.series_id"
        " JOIN nodes n ON n.id = s.node_id WHERE n.farm_id = %s AND n.source = 'sensor'"
        " AND n.block_id IS NOT NULL AND s.metric = 'soil_vwc' AND r.time >= %s AND r.time < %s"
        " GROUP BY n.block_id",
        (farm_id, start, end),
    ).fetchall()
    return {b: float(v) for b, v in rows}


@dataclass(frozen=True)
class Overlay:
    farm_id: str
    index: str
    source: str
    item_pk: int
    acquired_at: datetime
    png: bytes
    bounds: tuple[float, float, float, float]  # west, south, east, north
    vmin: float
    vmax: float


def save_overlay(conn: psycopg.Connection[Any], o: Overlay) -> bool:
    """Keep ``o`` unless the farm already has a newer image of that index and source."""
    cur = conn.execute(
        "INSERT INTO sky_overlays (farm_id, index, source, item_id, acquired_at, png, west, south, east,"
        " north, vmin, vmax) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (farm_id, index, source) DO UPDATE SET item_id = EXCLUDED.item_id,"
        " acquired_at = EXCLUDED.acquired_at, png = EXCLUDED.png, west = EXCLUDED.west,"
        " south = EXCLUDED.south, east = EXCLUDED.east, north = EXCLUDED.north, vmin = EXCLUDED.vmin,"
        " vmax = EXCLUDED.vmax, rendered_at = now()"
        " WHERE sky_overlays.acquired_at <= EXCLUDED.acquired_at",
        (o.farm_id, o.index, o.source, o.item_pk, o.acquired_at, o.png, *o.bounds, o.vmin, o.vmax),
    )
    return cur.rowcount == 1


def get_overlay(
    conn: psycopg.Connection[Any], farm_id: str, index: str = "ndvi", source: str | None = None
) -> Overlay | None:
    """The farm's stored overlay of ``index`` (the newest over both sources unless one is named)."""
    q = sql.SQL(
        "SELECT farm_id, index, source, item_id, acquired_at, png, west, south, east, north, vmin, vmax"
        " FROM sky_overlays WHERE farm_id = %s AND index = %s {} ORDER BY acquired_at DESC LIMIT 1"
    ).format(sql.SQL("AND source = %s") if source else sql.SQL(""))
    params: tuple[Any, ...] = (farm_id, index, source) if source else (farm_id, index)
    row = conn.execute(q, params).fetchone()
    if row is None:
        return None
    bounds = (float(row[6]), float(row[7]), float(row[8]), float(row[9]))
    return Overlay(
        row[0], row[1], row[2], int(row[3]), row[4], bytes(row[5]), bounds, float(row[10]), float(row[11])
    )
