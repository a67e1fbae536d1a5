"""Generated Sentinel-2-like scenes and drone orthomosaics with known values, and a naive reader.

Everything is written with rasterio into a temp dir: tiled GeoTIFFs in UTM, a STAC item per scene.
The naive functions recompute block statistics with plain per-pixel Python loops.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from pyproj import Transformer
from rasterio.transform import from_origin
from shapely.geometry import Point, shape

EPSG = 32650  # UTM zone 50N (central meridian 117 E)
ORIGIN = (600_000.0, 2_500_000.0)  # upper-left corner, metres
S2_ASSETS = {
    "blue": ("B02", 10),
    "green": ("B03", 10),
    "red": ("B04", 10),
    "rededge1": ("B05", 20),
    "nir": ("B08", 10),
    "scl": ("SCL", 20),
}


def write_tif(
    path: Path,
    data: np.ndarray,
    res: float,
    *,
    epsg: int = EPSG,
    origin: tuple[float, float] = ORIGIN,
    nodata: float | None = 0,
    tags: dict[str, str] | None = None,
) -> None:
    arr = data if data.ndim == 3 else data[None]
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        height=arr.shape[1],
        width=arr.shape[2],
        count=arr.shape[0],
        dtype=arr.dtype,
        crs=f"EPSG:{epsg}",
        transform=from_origin(origin[0], origin[1], res, res),
        nodata=nodata,
        tiled=True,
        blockxsize=256,
        blockysize=256,
    ) as ds:
        ds.write(arr)
        if tags:
            ds.update_tags(**tags)


def s2_scene(
    root: Path,
    item_id: str,
    *,
    size10: int = 600,
    seed: int = 0,
    baseline: str | None = "05.10",
    when: str = "2026-06-01T03:00:00Z",
    clouds: list[tuple[int, int, int, int]] | None = None,
    epsg: int = EPSG,
    origin: tuple[float, float] = ORIGIN,
    offset_applied: bool | None = None,
) -> tuple[Path, dict[str, np.ndarray]]:
    """A scene of DNs: random vegetation-like values; SCL 4 (vegetation) with cloud rectangles
    (rows/cols in 20 m pixels) of class 9. Returns the item path and the arrays written."""
    rng = np.random.default_rng(seed)
    d = root / item_id
    d.mkdir(parents=True)
    size20 = size10 // 2
    arrays: dict[str, np.ndarray] = {}
    base = {"blue": 1300, "green": 1500, "red": 1400, "rededge1": 2200, "nir": 4000}
    for key, (band, res) in S2_ASSETS.items():
        n = size10 if res == 10 else size20
        if key == "scl":
            a = np.full((n, n), 4, dtype=np.uint8)
            for r0, r1, c0, c1 in clouds or []:
                a[r0:r1, c0:c1] = 9
            a[0, 0] = 0  # a no-data corner
        else:
            a = (base[key] + rng.integers(-300, 1800 if key == "nir" else 300, size=(n, n))).astype(np.uint16)
            a[0, 0] = 0
        arrays[key] = a
        write_tif(d / f"{band}.tif", a, res, epsg=epsg, origin=origin, nodata=0)
    t = Transformer.from_crs(epsg, 4326, always_xy=True)
    x0, y0 = origin
    x1, y1 = x0 + size10 * 10, y0 - size10 * 10
    lons, lats = t.transform([x0, x1, x1, x0], [y0, y0, y1, y1])
    bbox = [min(lons), min(lats), max(lons), max(lats)]
    props: dict[str, Any] = {
        "datetime": when,
        "platform": "sentinel-2b",
        "constellation": "sentinel-2",
        "eo:cloud_cover": 12.5,
        "proj:epsg": epsg,
    }
    if baseline is not None:
        props["s2:processing_baseline"] = baseline
    if offset_applied is not None:
        props["earthsearch:boa_offset_applied"] = offset_applied
    item = {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": item_id,
        "collection": "sentinel-2-l2a",
        "bbox": bbox,
        "geometry": {
            "type": "Polygon",
            "coordinates": [
                [
                    [lons[0], lats[0]],
                    [lons[1], lats[1]],
                    [lons[2], lats[2]],
                    [lons[3], lats[3]],
                    [lons[0], lats[0]],
                ]
            ],
        },
        "properties": props,
        "links": [],
        "assets": {
            k: {
                "href": f"./{b}.tif",
                "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                "roles": ["data"],
            }
            for k, (b, _) in S2_ASSETS.items()
        },
    }
    path = d / "item.json"
    path.write_text(json.dumps(item))
    return path, arrays


def utm_polygon(coords: list[tuple[float, float]], epsg: int = EPSG) -> dict[str, Any]:
    """A lon/lat GeoJSON polygon from UTM vertices."""
    t = Transformer.from_crs(epsg, 4326, always_xy=True)
    ring = [list(t.transform(x, y)) for x, y in coords]
    ring.append(ring[0])
    return {"type": "Polygon", "coordinates": [ring]}


def naive_block_stats(
    arrays: dict[str, np.ndarray],
    geom_lonlat: dict[str, Any],
    *,
    offset: bool,
    epsg: int = EPSG,
    origin: tuple[float, float] = ORIGIN,
    index: str = "ndvi",
) -> dict[str, float]:
    """NDVI (or NDRE, red edge at 20 m) statistics of a block, one 10 m pixel at a time:
    centre -> lon/lat -> inside? -> SCL of the 20 m pixel containing it -> reflectance -> index.
    Pixels beyond the raster count as invalid."""
    poly = shape(geom_lonlat)
    t = Transformer.from_crs(epsg, 4326, always_xy=True)
    inv = Transformer.from_crs(4326, epsg, always_xy=True)
    w, s, e, n = poly.bounds
    xs, ys = inv.transform([w, e, e, w], [s, s, n, n])
    x0, y0 = origin
    c_lo, c_hi = math.floor((min(xs) - x0) / 10) - 2, math.ceil((max(xs) - x0) / 10) + 2
    r_lo, r_hi = math.floor((y0 - max(ys)) / 10) - 2, math.ceil((y0 - min(ys)) / 10) + 2
    n10 = arrays["red"].shape[0]
    inside = 0
    vals: list[float] = []
    for r in range(r_lo, r_hi + 1):
        for c in range(c_lo, c_hi + 1):
            x, y = x0 + (c + 0.5) * 10, y0 - (r + 0.5) * 10
            lon, lat = t.transform(x, y)
            if not poly.contains(Point(lon, lat)):
                continue
            inside += 1
            if not (0 <= r < n10 and 0 <= c < n10):
                continue
            scl = int(arrays["scl"][r // 2, c // 2])
            if scl in (0, 1, 3, 8, 9, 10, 11):
                continue
            red = int(arrays["red"][r, c]) if index == "ndvi" else int(arrays["rededge1"][r // 2, c // 2])
            nir = int(arrays["nir"][r, c])
            if red == 0 or nir == 0:
                continue
            off = -1000 if offset else 0
            rr, nn = (red + off) / 10000, (nir + off) / 10000
            if rr + nn == 0:
                continue
            vals.append((nn - rr) / (nn + rr))
    return naive_summary(vals, inside)


def naive_summary(vals: list[float], inside: int) -> dict[str, float]:
    vals = sorted(vals)
    k = len(vals)

    def pct(p: float) -> float:  # linear interpolation between closest ranks (numpy's default)
        pos = (k - 1) * p / 100
        lo = math.floor(pos)
        hi = min(lo + 1, k - 1)
        return vals[lo] + (vals[hi] - vals[lo]) * (pos - lo)

    if k == 0:
        return {"valid": 0.0, "n_inside": inside}
    return {
        "mean": sum(vals) / k,
        "median": pct(50),
        "p10": pct(10),
        "p90": pct(90),
        "valid": k / inside,
        "n_inside": inside,
    }


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")
