"""Per-block index statistics of one scene: read windows, scale, mask, compute, store.

For each block: reproject its polygon to the raster's CRS, take the window of the reference band
(red) covering it, sample every needed band onto that grid, turn digital numbers into reflectance
(Sentinel-2: by processing baseline; drone: the item's scale/offset), mask clouds/shadow/snow from
SCL, then the statistics of each index with ``analytics.imagery``. A block-date whose valid
fraction is below the threshold is recorded as skipped and stores nothing.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import psycopg
import rasterio
from numpy.typing import NDArray
from rasterio.errors import RasterioIOError
from shapely.geometry import shape

from analytics.imagery import (
    CANOPY_METRIC,
    ZonalStats,
    available_indices,
    canopy_fraction,
    compute_index,
    metric_name,
    s2_reflectance,
    scaled_reflectance,
    scl_clear,
    summarize,
)
from analytics.imagery.config import CANOPY_NDVI, INDEX_BANDS, MIN_VALID_FRACTION
from kernel.log import event, get_logger
from sky.errors import InputError, SourceUnavailable
from sky.items import Scene
from sky.raster import (
    Grid,
    block_grid,
    inside_mask,
    read_on_grid,
    read_selected,
    reproject_lonlat,
    tile_chunks,
)
from store import sky as store_sky
from store.sky import Block

log = get_logger("sky")


@dataclass
class BlockResult:
    farm_id: str
    block_id: str
    status: str  # stored | low_valid | outside
    stats: dict[str, ZonalStats] = field(default_factory=dict)  # index -> statistics
    canopy: float | None = None
    valid: float | None = None
    n_pixels: int = 0

    def values(self) -> dict[str, float]:
        """Metric name -> value, as stored (finite values only)."""
        out: dict[str, float] = {}
        for index, st in self.stats.items():
            for stat, v in st.as_dict().items():
                if np.isfinite(v):
                    out[metric_name(index, stat)] = float(v)
        if self.canopy is not None and np.isfinite(self.canopy):
            out[CANOPY_METRIC] = float(self.canopy)
        return out


def open_dataset(stack: ExitStack, href: str, cache: dict[str, Any]) -> Any:
    if href not in cache:
        try:
            cache[href] = stack.enter_context(rasterio.open(href))
        except RasterioIOError as exc:
            msg = f"cannot open {href}: {exc}"
            if "://" in href:
                raise SourceUnavailable(msg) from None
            raise InputError(msg) from None
    return cache[href]


def clear_on_grid(scene: Scene, datasets: dict[str, Any], grid: Grid) -> NDArray[np.bool_] | None:
    """The SCL clear-sky mask on a block's grid (None when the item has no SCL band)."""
    if scene.scl is None:
        return None
    scl = read_on_grid(datasets[scene.scl.href], [scene.scl.band], grid)[0]
    clear: NDArray[np.bool_] = scl_clear(np.nan_to_num(scl, nan=0.0).astype(np.int64))
    if scl.dtype.kind == "f":
        clear &= np.isfinite(scl)
    return clear


def reflectance_on_grid(
    scene: Scene,
    datasets: dict[str, Any],
    grid: Grid,
    names: list[str],
    select: NDArray[np.bool_] | None = None,
) -> dict[str, NDArray[np.floating[Any]]]:
    """Reflectance of the named bands on a block's grid; with ``select``, of the selected pixels
    only (1-D, in no particular order): digital numbers are picked tile by tile before they are
    scaled, and tiles without a selected pixel are not decoded (a rotated block touches about
    two thirds of its window's tiles)."""
    chunks = tile_chunks(datasets[scene.bands["red"].href], grid)
    by_href: dict[str, list[str]] = defaultdict(list)
    for nm in names:
        by_href[scene.bands[nm].href].append(nm)
    out: dict[str, NDArray[np.floating[Any]]] = {}
    for href, nms in by_href.items():
        ds = datasets[href]
        idx = [scene.bands[n].band for n in nms]
        # with a selection: chunked along the red band's tiles, the same order for every file
        raw = read_on_grid(ds, idx, grid) if select is None else read_selected(ds, idx, grid, select, chunks)
        for k, nm in enumerate(nms):
            ref = scene.bands[nm]
            dn = raw[k]
            if scene.s2:
                out[nm] = s2_reflectance(dn, offset=scene.s2_offset, nodata=0)
            else:
                nodata = ref.nodata if ref.nodata is not None else ds.nodata
                out[nm] = scaled_reflectance(dn, scale=ref.scale, offset=ref.offset, nodata=nodata)
    return out


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def compute_blocks(
    scene: Scene,
    blocks: list[Block],
    *,
    min_valid: float = MIN_VALID_FRACTION,
    canopy_ndvi: float = CANOPY_NDVI,
    workers: int = 1,
) -> list[BlockResult]:
    """Statistics of every index the scene allows, for each block (no database).

    With ``workers`` > 1 the blocks are split among threads, each with its own dataset handles
    (GDAL decompression and numpy's large-array loops run without the GIL); results keep the
    blocks' order.
    """
    if workers > 1 and len(blocks) > 1:
        n = min(workers, len(blocks))
        chunks = [blocks[i::n] for i in range(n)]
        with ThreadPoolExecutor(max_workers=n) as pool:
            parts = list(
                pool.map(
                    lambda c: compute_blocks(scene, c, min_valid=min_valid, canopy_ndvi=canopy_ndvi), chunks
                )
            )
        by_id = {(r.farm_id, r.block_id): r for part in parts for r in part}
        return [by_id[(b.farm_id, b.block_id)] for b in blocks]
    indices = available_indices(frozenset(scene.bands))
    names = sorted({b for i in indices for b in INDEX_BANDS[i]})
    results = []
    with ExitStack() as stack:
        cache: dict[str, Any] = {}
        for nm in names:
            open_dataset(stack, scene.bands[nm].href, cache)
        if scene.scl is not None:
            open_dataset(stack, scene.scl.href, cache)
        ref = cache[scene.bands["red"].href]
        crs = ref.crs
        if crs is None:
            raise InputError(f"{ref.name}: raster has no CRS")
        for ds in cache.values():
            if ds.crs != crs:
                raise InputError(f"{ds.name}: CRS {ds.crs} differs from the red band's {crs}")
        wkt = crs.to_wkt()
        for b in blocks:
            poly = reproject_lonlat(shape(b.geometry), wkt)
            grid = block_grid(ref, poly)
            if grid is None:
                results.append(BlockResult(b.farm_id, b.block_id, "outside"))
                continue
            inside = inside_mask(grid, poly)
            n_inside = int(np.count_nonzero(inside))
            clear = clear_on_grid(scene, cache, grid)
            candidates = inside if clear is None else inside & clear
            refl = reflectance_on_grid(scene, cache, grid, names, select=candidates)
            res = BlockResult(b.farm_id, b.block_id, "stored", n_pixels=n_inside)
            ndvi_px = None
            for index in indices:
                values = compute_index(index, refl)  # 1-D: the block's clear pixels
                res.stats[index] = summarize(values, n_inside, scratch=True)  # reordered: canopy counts
                if index == "ndvi":
                    ndvi_px = values
            key = "ndvi" if "ndvi" in res.stats else indices[0]
            res.valid = res.stats[key].valid
            if res.valid < min_valid:
                res.status = "low_valid"
            elif scene.source == "drone" and ndvi_px is not None:
                res.canopy = canopy_fraction(ndvi_px, np.ones(ndvi_px.shape, dtype=bool), None, canopy_ndvi)
            results.append(res)
    return results


def store_results(
    conn: psycopg.Connection[Any], item_pk: int, scene: Scene, results: list[BlockResult]
) -> int:
    """Write stored blocks' statistics as readings and every block's run record; one transaction."""
    rows: list[tuple[int, datetime, float]] = []
    with conn.transaction():
        for r in results:
            store_sky.record_block_run(conn, item_pk, r.farm_id, r.block_id, r.status, r.valid, r.n_pixels)
            if r.status != "stored":
                continue
            vals = r.values()
            ids = store_sky.ensure_block_series(conn, r.farm_id, r.block_id, scene.source, vals)
            rows.extend((ids[m], scene.when, v) for m, v in vals.items())
        store_sky.upsert_readings(conn, rows)
    return len(rows)


def process_scene(
    conn: psycopg.Connection[Any],
    item_pk: int,
    scene: Scene,
    blocks: list[Block],
    *,
    min_valid: float = MIN_VALID_FRACTION,
) -> list[BlockResult]:
    results = compute_blocks(scene, blocks, min_valid=min_valid, workers=default_workers())
    n = store_results(conn, item_pk, scene, results)
    counts: dict[str, int] = defaultdict(int)
    for r in results:
        counts[r.status] += 1
    event(
        log,
        "scene_processed",
        level=logging.INFO,
        item=scene.item.id,
        source=scene.source,
        readings=n,
        stored=counts["stored"],
        low_valid=counts["low_valid"],
        outside=counts["outside"],
    )
    return results
