"""Generated imagery for the demo: Sentinel-2-like scenes per farm and one drone flight.

Small GeoTIFFs (WGS 84) over each farm's blocks, written with rasterio and imported the way
``agri sky import FILE --profile ... --datetime ...`` does (:func:`sky.catalog.collect` then
:func:`sky.catalog.import_item`), so per-block NDVI/NDRE/NDWI/EVI statistics land in ``readings``.
In the newest scene block ``b3`` of 龙驹镇柑橘园 has lost vigour (NDVI about 0.45 against 0.75 in
its neighbours): the "NDVI drops against its neighbours" scenario on the dashboard's sky layer.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import psycopg
import rasterio
from rasterio.transform import from_origin

from sky.catalog import collect, import_item

if TYPE_CHECKING:
    from agri.stack.district import Farm
    from agri.stack.manager import Stack

NDVI_DROP_FARM, NDVI_DROP_BLOCK = "longju-citrus", "b3"
SCENE_DAYS_AGO = (15, 10, 5)  # three passes a few days apart (Sentinel-2 revisit)


def _grid(f: Farm, res_m: float) -> tuple[float, float, float, float, int, int]:
    """(west, north, dlon, dlat, width, height) covering the farm's row of blocks with a margin."""
    dlat = res_m / 111_320
    dlon = res_m / (111_320 * math.cos(math.radians(f.lat)))
    width_m = f.blocks * 120 * 1.1 + 100
    west, north = f.lon - 50 / (111_320 * math.cos(math.radians(f.lat))), f.lat + 140 / 111_320
    return west, north, dlon, dlat, int(width_m / res_m), int(240 / res_m)


def _block_mask(f: Farm, block: int, west: float, north: float, dlon: float, dlat: float,
                w: int, h: int) -> np.ndarray:  # fmt: skip
    bl_dlat = 90 / 111_320
    bl_dlon = 120 / (111_320 * math.cos(math.radians(f.lat)))
    x0 = f.lon + (block - 1) * bl_dlon * 1.1
    cols = west + (np.arange(w) + 0.5) * dlon
    rows = north - (np.arange(h) + 0.5) * dlat
    inx = (cols >= x0) & (cols <= x0 + bl_dlon)
    iny = (rows >= f.lat) & (rows <= f.lat + bl_dlat)
    return np.asarray(iny[:, None] & inx[None, :])


def _ndvi_map(f: Farm, when_index: int, west: float, north: float, dlon: float, dlat: float,
              w: int, h: int, rng: np.random.Generator) -> np.ndarray:  # fmt: skip
    ndvi = np.full((h, w), 0.25)  # bare ground, roads
    for b in range(1, f.blocks + 1):
        level = 0.72 + 0.02 * when_index
        if f.id == NDVI_DROP_FARM and b == int(NDVI_DROP_BLOCK[1:]) and when_index == len(SCENE_DAYS_AGO) - 1:
            level = 0.45
        ndvi[_block_mask(f, b, west, north, dlon, dlat, w, h)] = level
    return np.clip(ndvi + rng.normal(0, 0.02, ndvi.shape), -0.2, 0.95)


def _reflectances(ndvi: np.ndarray) -> dict[str, np.ndarray]:
    nir = 0.30 * np.ones_like(ndvi)
    red = nir * (1 - ndvi) / (1 + ndvi)
    return {"blue": red * 0.8, "green": red * 1.6, "red": red, "rededge": (red + nir) / 2, "nir": nir}


def write_s2(path: Path, f: Farm, when_index: int, rng: np.random.Generator) -> None:
    west, north, dlon, dlat, w, h = _grid(f, 10.0)
    refl = _reflectances(_ndvi_map(f, when_index, west, north, dlon, dlat, w, h, rng))
    dn = [
        np.round(refl[b] * 10000 + 1000).astype("uint16") for b in ("blue", "green", "red", "rededge", "nir")
    ]
    scl = np.full((h, w), 4, dtype="uint16")  # vegetation
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=6, dtype="uint16", crs="EPSG:4326",
                       transform=from_origin(west, north, dlon, dlat), nodata=0) as dst:  # fmt: skip
        for i, band in enumerate([*dn, scl], start=1):
            dst.write(band, i)


def write_drone(path: Path, f: Farm, rng: np.random.Generator) -> None:
    west, north, dlon, dlat, w, h = _grid(f, 1.0)
    refl = _reflectances(_ndvi_map(f, len(SCENE_DAYS_AGO) - 1, west, north, dlon, dlat, w, h, rng))
    tr = from_origin(west, north, dlon, dlat)
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=5, dtype="float32",
                       crs="EPSG:4326", transform=tr, nodata=-1) as dst:  # fmt: skip
        for i, b in enumerate(("blue", "green", "red", "rededge", "nir"), start=1):
            dst.write(refl[b].astype("float32"), i)


def import_demo_imagery(stack: Stack, root: Path, farms: tuple[Farm, ...]) -> int:
    """Write and import the scenes (one per farm and date) and one drone flight; the scene count."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    now = datetime.now(UTC).replace(hour=3, minute=20, second=0, microsecond=0)
    jobs: list[tuple[Path, str, datetime, str | None, str]] = []
    for f in farms:
        for k, days in enumerate(SCENE_DAYS_AGO):
            p = root / f"s2-{f.id}-{k}.tif"
            write_s2(p, f, k, rng)
            jobs.append((p, "s2-l2a-stack", now - timedelta(days=days), "05.10", f.id))
    drone_farm = next(f for f in farms if f.id == NDVI_DROP_FARM)
    p = root / f"drone-{drone_farm.id}.tif"
    write_drone(p, drone_farm, rng)
    jobs.append((p, "drone-ms", now - timedelta(days=4, hours=-4), None, drone_farm.id))
    with psycopg.connect(stack.database_url(), autocommit=True) as conn:
        for path, profile, when, baseline, farm in jobs:
            for item, href in collect(str(path), home=stack.home, profile=profile, bands=None, when=when,
                                      processing_baseline=baseline):  # fmt: skip
                import_item(conn, item, href=href, farm_id=farm)
    return len(jobs) - 1
