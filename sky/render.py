"""A colour-mapped PNG of a farm's latest index, in WGS 84, with its bounds for a map overlay.

The index is computed on the reference band's grid over the farm's blocks, pixels outside every
block or masked by SCL left transparent, then warped to a lon/lat grid (``rasterio.warp``) so the
PNG's corners are exactly the returned (west, south, east, north) bounds.
"""

from __future__ import annotations

import warnings
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import psycopg
import pystac
from numpy.typing import NDArray
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning
from rasterio.io import MemoryFile
from rasterio.warp import Resampling, calculate_default_transform, reproject
from shapely.geometry import shape
from shapely.ops import unary_union

from analytics.imagery import INDEX_BANDS, compute_index
from analytics.imagery.colour import DISPLAY_RANGE, colormap
from sky.errors import InputError
from sky.items import scene_from_item
from sky.process import clear_on_grid, open_dataset, reflectance_on_grid
from sky.raster import block_grid, inside_mask, reproject_lonlat
from store import sky as store_sky

MAX_PIXELS = 4096 * 4096


@dataclass(frozen=True)
class Rendered:
    png: bytes
    bounds: tuple[float, float, float, float]  # west, south, east, north (degrees)
    item_id: str
    when: datetime
    index: str
    vmin: float
    vmax: float
    width: int
    height: int


def encode_png(rgba: NDArray[np.uint8]) -> bytes:
    h, w, _ = rgba.shape
    # A PNG has no geotransform: the bounds travel beside it, so GDAL's warning says nothing new.
    with warnings.catch_warnings(), MemoryFile() as mem:
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with mem.open(driver="PNG", width=w, height=h, count=4, dtype="uint8") as ds:
            ds.write(np.moveaxis(rgba, -1, 0))
        return bytes(mem.read())


def render_item(item: pystac.Item, blocks: list[store_sky.Block], index: str = "ndvi") -> Rendered:
    if index not in INDEX_BANDS:
        raise InputError(f"unknown index {index!r}; known: {', '.join(INDEX_BANDS)}")
    if not blocks:
        raise InputError("no blocks to render")
    scene = scene_from_item(item)
    missing = [b for b in INDEX_BANDS[index] if b not in scene.bands]
    if missing:
        raise InputError(f"item {item.id} has no {', '.join(missing)} band for {index}")
    union = unary_union([shape(b.geometry) for b in blocks])
    with ExitStack() as stack:
        cache: dict[str, Any] = {}
        for nm in INDEX_BANDS[index]:
            open_dataset(stack, scene.bands[nm].href, cache)
        if scene.scl is not None:
            open_dataset(stack, scene.scl.href, cache)
        ref = cache[scene.bands["red" if "red" in scene.bands else "nir"].href]
        poly = reproject_lonlat(union, ref.crs.to_wkt())
        grid = block_grid(ref, poly)
        if grid is None:
            raise InputError(f"item {item.id} does not cover the blocks")
        if grid.width * grid.height > MAX_PIXELS:
            raise InputError(f"the blocks span {grid.width}x{grid.height} pixels; render fewer blocks")
        refl = reflectance_on_grid(scene, cache, grid, list(INDEX_BANDS[index]))
        clear = clear_on_grid(scene, cache, grid)
        values = compute_index(index, refl)
        ok = inside_mask(grid, poly)
        if clear is not None:
            ok &= clear
        values[~ok] = np.nan
        src_crs = ref.crs
    dst_crs = CRS.from_epsg(4326)
    w0, s0, e0, n0 = grid.bounds
    dst_t, dw, dh = calculate_default_transform(src_crs, dst_crs, grid.width, grid.height, w0, s0, e0, n0)
    out = np.full((dh, dw), np.nan)
    reproject(
        values,
        out,
        src_transform=grid.transform,
        src_crs=src_crs,
        dst_transform=dst_t,
        dst_crs=dst_crs,
        src_nodata=np.nan,
        dst_nodata=np.nan,
        resampling=Resampling.nearest,
    )
    vmin, vmax = DISPLAY_RANGE[index]
    west, north = dst_t.c, dst_t.f  # north-up lon/lat grid from calculate_default_transform
    east, south = dst_t.c + dst_t.a * dw, dst_t.f + dst_t.e * dh
    return Rendered(
        encode_png(colormap(out, vmin, vmax)),
        (west, south, east, north),
        item.id,
        scene.when,
        index,
        vmin,
        vmax,
        dw,
        dh,
    )


def render_latest(
    conn: psycopg.Connection[Any], farm_id: str, index: str = "ndvi", source: str | None = None
) -> Rendered:
    """The farm's newest item with stored block statistics, rendered over the farm's blocks."""
    pk = store_sky.latest_item_for_farm(conn, farm_id, source)
    if pk is None:
        raise InputError(f"farm {farm_id!r} has no processed imagery yet (agri sky import / fetch)")
    row = store_sky.get_item(conn, pk)
    assert row is not None
    item = pystac.Item.from_dict(row["stac"])
    return render_item(item, store_sky.list_blocks(conn, farm_id), index)
