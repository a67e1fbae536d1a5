"""`agri bench sky`: per-block zonal statistics over a full Sentinel-2 tile and a drone orthomosaic.

1. A 10,980 x 10,980 Sentinel-2 L2A tile (B04 + B08 at 10 m, SCL at 20 m; tiled, deflate-compressed
   GeoTIFFs like the public COGs) and 500 block polygons of 1-16 ha: NDVI mean/median/p10/p90 and
   valid fraction per block reading only the windows that cover blocks. Baseline in the same run:
   reading the whole tile (the three bands), which any non-windowed approach has to do first.
2. A 20,000 x 20,000, 5-band, 5 cm drone orthomosaic (uint16) and 50 blocks of 1 ha: all four
   indices and canopy fraction per block.

Inputs are generated once and cached under ``~/.cache/agri/bench-sky``. Each measurement runs in a
fresh process (spawn), so its peak resident memory (``VmHWM``) is its own. GDAL's block cache
is capped at 256 MB for every measurement (through the environment of the measuring process).
"""

from __future__ import annotations

import json
import math
import os
import resource
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import rasterio
from pyproj import Transformer
from rasterio.transform import from_origin
from rasterio.windows import Window

from sky.items import item_from_geotiff, scene_from_item
from sky.process import compute_blocks, default_workers
from store.sky import Block

EPSG = 32650
S2_SIZE = 10_980
S2_ORIGIN = (600_000.0, 2_600_040.0)
DRONE_SIZE = 20_000
DRONE_RES = 0.05
DRONE_ORIGIN = (610_000.0, 2_590_000.0)
GDAL_CACHEMAX_MB = "256"
STRIP = 1024


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "agri" / "bench-sky"


def _profile(size: int, count: int, dtype: str, res: float, origin: tuple[float, float]) -> dict[str, Any]:
    return {
        "driver": "GTiff", "height": size, "width": size, "count": count, "dtype": dtype,
        "crs": f"EPSG:{EPSG}", "transform": from_origin(origin[0], origin[1], res, res), "nodata": 0,
        "tiled": True, "blockxsize": 512, "blockysize": 512, "compress": "deflate", "zlevel": 1,
        "predictor": 2, "interleave": "pixel", "BIGTIFF": "IF_SAFER",
    }  # fmt: skip


def _field_pattern(rows: np.ndarray, cols: np.ndarray, period: float) -> np.ndarray:
    """Smooth field-like structure (so deflate behaves as on real scenes), in 0..1."""
    r, c = np.meshgrid(rows, cols, indexing="ij")
    wave: np.ndarray = np.sin(r / period) * np.cos(c / (1.3 * period)) + np.sin((r + c) / (3.1 * period))
    return 0.5 + 0.25 * wave


def make_s2(folder: Path, log: Any = print) -> Path:
    """The tile's three bands and a STAC item (generated once, in strips)."""
    item_path = folder / "item.json"
    if item_path.exists():
        return item_path
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(42)
    t0 = time.perf_counter()
    for name, size, res, dtype in (("B04", S2_SIZE, 10.0, "uint16"), ("B08", S2_SIZE, 10.0, "uint16"),
                                   ("SCL", S2_SIZE // 2, 20.0, "uint8")):  # fmt: skip
        tmp = folder / f"{name}.tif.part"
        with rasterio.open(tmp, "w", **_profile(size, 1, dtype, res, S2_ORIGIN)) as ds:
            for r0 in range(0, size, STRIP):
                h = min(STRIP, size - r0)
                p = _field_pattern(np.arange(r0, r0 + h), np.arange(size), 40.0 if res == 10 else 20.0)
                if name == "SCL":
                    a = np.where(p > 0.85, 9, 4).astype(np.uint8)  # cloud where the pattern peaks
                else:
                    base = 1400 + 600 * p if name == "B04" else 2500 + 3000 * p
                    a = (base + rng.integers(-150, 150, p.shape)).astype(np.uint16)
                ds.write(a[None], window=Window(0, r0, size, h))
        tmp.rename(folder / f"{name}.tif")
    t = Transformer.from_crs(EPSG, 4326, always_xy=True)
    x0, y0 = S2_ORIGIN
    x1, y1 = x0 + S2_SIZE * 10, y0 - S2_SIZE * 10
    lons, lats = t.transform([x0, x1, x1, x0], [y0, y0, y1, y1])
    ring = [[lo, la] for lo, la in zip(lons, lats, strict=True)]
    item = pystac.Item(
        id="S2B_50QRK_BENCH", geometry={"type": "Polygon", "coordinates": [[*ring, ring[0]]]},
        bbox=[min(lons), min(lats), max(lons), max(lats)], datetime=datetime(2026, 6, 1, 3, tzinfo=UTC),
        properties={"platform": "sentinel-2b", "s2:processing_baseline": "05.10", "eo:cloud_cover": 10.0},
    )  # fmt: skip
    for key, name in (("red", "B04"), ("nir", "B08"), ("scl", "SCL")):
        item.add_asset(key, pystac.Asset(href=str(folder / f"{name}.tif"), media_type=pystac.MediaType.COG))
    item_path.write_text(json.dumps(item.to_dict(include_self_link=False)))
    log(f"  generated the Sentinel-2 tile in {time.perf_counter() - t0:.0f} s ({folder})")
    return item_path


def make_drone(folder: Path, log: Any = print) -> Path:
    path = folder / "ortho.tif"
    if path.exists():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    t0 = time.perf_counter()
    tmp = folder / "ortho.tif.part"
    with rasterio.open(tmp, "w", **_profile(DRONE_SIZE, 5, "uint16", DRONE_RES, DRONE_ORIGIN)) as ds:
        for r0 in range(0, DRONE_SIZE, STRIP):
            h = min(STRIP, DRONE_SIZE - r0)
            p = _field_pattern(np.arange(r0, r0 + h), np.arange(DRONE_SIZE), 300.0)
            scale = np.array([0.05, 0.08, 0.06, 0.2, 0.45])[:, None, None]
            bands = (scale * (0.4 + p[None]) * 65535 / 1.5 + rng.integers(0, 400, (5, *p.shape))).astype(
                np.uint16
            )
            ds.write(np.maximum(bands, 1), window=Window(0, r0, DRONE_SIZE, h))
        ds.update_tags(TIFFTAG_DATETIME="2026:06:03 10:00:00")
    tmp.rename(path)
    log(f"  generated the drone orthomosaic in {time.perf_counter() - t0:.0f} s ({path})")
    return path


def random_blocks(
    n: int,
    origin: tuple[float, float],
    extent_m: float,
    size_m: tuple[float, float],
    seed: int,
    *,
    farms: int = 0,
    farm_radius_m: float = 1500.0,
) -> list[Block]:
    """``n`` non-degenerate quadrilaterals (lon/lat) of ``size_m`` metres across, inside the extent:
    scattered uniformly, or (``farms`` > 0) in that many farms whose blocks lie within
    ``farm_radius_m`` of the farm's centre, as a district's orchards are."""
    rng = np.random.default_rng(seed)
    t = Transformer.from_crs(EPSG, 4326, always_xy=True)
    x0, y0 = origin
    margin = farm_radius_m + size_m[1]
    centres = rng.uniform(margin, extent_m - margin, (farms, 2)) if farms else np.zeros((0, 2))
    out = []
    for i in range(n):
        side = rng.uniform(*size_m)
        if farms:
            fx, fy = centres[i % farms]
            cx = x0 + fx + rng.uniform(-farm_radius_m, farm_radius_m)
            cy = y0 - fy - rng.uniform(-farm_radius_m, farm_radius_m)
        else:
            cx = x0 + rng.uniform(side, extent_m - side)
            cy = y0 - rng.uniform(side, extent_m - side)
        ang = rng.uniform(0, math.pi / 2) + np.array([0, 0.5, 1.0, 1.5]) * math.pi
        rad = side / math.sqrt(2) * rng.uniform(0.9, 1.1, 4)
        xs, ys = t.transform(cx + rad * np.cos(ang), cy + rad * np.sin(ang))
        ring = [[float(a), float(b)] for a, b in zip(xs, ys, strict=True)]
        geom = {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}
        out.append(
            Block("bench", f"b{i}", f"b{i}", "field", geom, side * side, (min(xs), min(ys), max(xs), max(ys)))
        )
    return out


def _cap_gdal_cache() -> None:
    """Cap GDAL's block cache in this (spawned, measuring) process before GDAL first uses it.

    Through the environment, not ``rasterio.Env``: rasterio re-applies an Env's options around
    every read, and with GDAL_CACHEMAX among them each read decoded its tiles again (8 ms instead of
    0.2 ms for a small window, measured here).
    """
    os.environ["GDAL_CACHEMAX"] = GDAL_CACHEMAX_MB


def _peak_mb() -> float:
    """Peak resident memory of this process image (VmHWM: reset at exec, unlike ``ru_maxrss``,
    which a spawned child inherits from the parent it was forked from)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_windows(item_path: str, n_blocks: int, farms: int) -> dict[str, float]:
    _cap_gdal_cache()
    scene = scene_from_item(pystac.Item.from_file(item_path))
    blocks = random_blocks(n_blocks, S2_ORIGIN, S2_SIZE * 10, (100, 400), seed=1, farms=farms)
    t0, c0 = time.perf_counter(), time.process_time()
    res = compute_blocks(scene, blocks, min_valid=0.0, workers=default_workers())
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    px = sum(r.n_pixels for r in res)
    return {"seconds": dt, "cpu_seconds": cpu, "peak_mb": _peak_mb(), "blocks": len(res), "block_pixels": px,
            "stored": sum(r.status == "stored" for r in res)}  # fmt: skip


def run_whole(item_path: str) -> dict[str, float]:
    _cap_gdal_cache()
    scene = scene_from_item(pystac.Item.from_file(item_path))
    t0, c0 = time.perf_counter(), time.process_time()
    total = 0
    for ref in (scene.bands["red"], scene.bands["nir"], scene.scl):
        assert ref is not None
        with rasterio.open(ref.href) as ds:
            total += int(ds.read(1).size)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"seconds": dt, "cpu_seconds": cpu, "peak_mb": _peak_mb(), "pixels": total}


def run_drone(path: str, n_blocks: int) -> dict[str, float]:
    _cap_gdal_cache()
    item = item_from_geotiff(path, profile="drone-ms-u16")
    scene = scene_from_item(item)
    blocks = random_blocks(n_blocks, DRONE_ORIGIN, DRONE_SIZE * DRONE_RES, (99.0, 101.0), seed=2)
    t0, c0 = time.perf_counter(), time.process_time()
    res = compute_blocks(scene, blocks, min_valid=0.0, workers=default_workers())
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    px = sum(r.n_pixels for r in res)
    return {
        "seconds": dt, "cpu_seconds": cpu, "peak_mb": _peak_mb(), "blocks": len(res), "block_pixels": px,
        "indices": len(res[0].stats), "canopy_mean": float(np.mean([r.canopy or 0 for r in res])),
    }  # fmt: skip


@dataclass
class Report:
    s2_windows: dict[str, float]  # blocks in 25 farms of 20 (a district)
    s2_scattered: dict[str, float]  # the same count scattered over the whole tile (worst case)
    s2_whole: dict[str, float]
    drone: dict[str, float] | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "s2_windows_farms": self.s2_windows, "s2_windows_scattered": self.s2_scattered,
            "s2_whole_tile_read": self.s2_whole,
            "ratio_windows_to_whole": self.s2_windows["seconds"] / self.s2_whole["seconds"],
            "drone": self.drone,
        }  # fmt: skip


def in_fresh_process(fn: Any, *args: Any) -> dict[str, float]:
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as ex:
        result: dict[str, float] = ex.submit(fn, *args).result()
        return result


def run(n_blocks: int = 500, n_drone: int = 50, drone: bool = True, log: Any = print) -> Report:
    root = cache_dir()
    log(f"  load average before: {', '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    item = make_s2(root / "s2", log)
    ortho = make_drone(root / "drone", log) if drone else None
    win = in_fresh_process(run_windows, str(item), n_blocks, max(1, n_blocks // 20))
    scattered = in_fresh_process(run_windows, str(item), n_blocks, 0)
    whole = in_fresh_process(run_whole, str(item))
    dr = in_fresh_process(run_drone, str(ortho), n_drone) if ortho else None
    return Report(win, scattered, whole, dr)
