"""Generated imagery for `agri demo`: two Sentinel-2-like scenes per farm and one drone flight.

Each farm gets a small 10 m scene (B02 B03 B04 B05 B08 + SCL, tiled GeoTIFFs and a STAC item,
processing baseline 05.10) around its blocks on two dates five days apart; on the second date one
block's NDVI drops (so `agri sky fuse` has something to say) and a cloud covers part of the scene.
The first farm also gets a 10 cm drone orthomosaic of its first block. Everything goes through
``sky.catalog.import_item``, exactly as `agri sky import` would.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pystac
import rasterio
from pyproj import Transformer
from rasterio.transform import from_origin

from sky.catalog import import_item
from sky.items import item_from_geotiff

EXTENT_M = 2000.0
ASSETS = {"blue": ("B02", 10), "green": ("B03", 10), "red": ("B04", 10), "rededge1": ("B05", 20),
          "nir": ("B08", 10), "scl": ("SCL", 20)}  # fmt: skip


def _utm_epsg(lon: float, lat: float) -> int:
    return (32600 if lat >= 0 else 32700) + int((lon + 180) // 6) + 1


def _write(path: Path, a: np.ndarray, epsg: int, x0: float, y0: float, res: float, **tags: str) -> None:
    arr = a if a.ndim == 3 else a[None]
    with rasterio.open(
        path, "w", driver="GTiff", height=arr.shape[1], width=arr.shape[2], count=arr.shape[0],
        dtype=arr.dtype, crs=f"EPSG:{epsg}", transform=from_origin(x0, y0, res, res), nodata=0,
        tiled=True, blockxsize=256, blockysize=256, compress="deflate",
    ) as ds:  # fmt: skip
        ds.write(arr)
        if tags:
            ds.update_tags(**tags)


def _scene(folder: Path, item_id: str, lon: float, lat: float, when: datetime, drop: bool, seed: int) -> Path:
    epsg = _utm_epsg(lon, lat)
    fwd = Transformer.from_crs(4326, epsg, always_xy=True)
    inv = Transformer.from_crs(epsg, 4326, always_xy=True)
    cx, cy = fwd.transform(lon, lat)
    x0, y0 = math.floor((cx - 500) / 20) * 20, math.floor((cy + EXTENT_M - 500) / 20) * 20
    n10 = int(EXTENT_M / 10)
    rng = np.random.default_rng(seed)
    d = folder / item_id
    d.mkdir(parents=True, exist_ok=True)
    base = {"blue": 1300, "green": 1500, "red": 1350, "rededge1": 2300, "nir": 4200}
    for key, (band, res) in ASSETS.items():
        n = n10 if res == 10 else n10 // 2
        if key == "scl":
            a = np.full((n, n), 4, dtype=np.uint8)
            if drop:
                a[: n // 4, n // 2 :] = 9  # a cloud over the scene's north-east corner
        else:
            a = (base[key] + rng.integers(-150, 150, (n, n))).astype(np.uint16)
            if drop and key in ("nir", "red"):
                # the farm's second block (about 130-250 m east, 0-90 m north of the point) withers
                c0, c1 = int((cx - x0 + 130) / res), int((cx - x0 + 250) / res)
                r0, r1 = int((y0 - cy - 90) / res), int((y0 - cy) / res)
                a[r0:r1, c0:c1] = (a[r0:r1, c0:c1] * (0.75 if key == "nir" else 1.3)).astype(np.uint16)
        _write(d / f"{band}.tif", a, epsg, x0, y0, float(res))
    xs, ys = [x0, x0 + EXTENT_M, x0 + EXTENT_M, x0], [y0, y0, y0 - EXTENT_M, y0 - EXTENT_M]
    lons, lats = inv.transform(xs, ys)
    ring = [[a, b] for a, b in zip(lons, lats, strict=True)]
    item = pystac.Item(
        id=item_id, geometry={"type": "Polygon", "coordinates": [[*ring, ring[0]]]},
        bbox=[min(lons), min(lats), max(lons), max(lats)], datetime=when, collection="sentinel-2-l2a",
        properties={"platform": "sentinel-2b", "s2:processing_baseline": "05.10",
                    "eo:cloud_cover": 20.0 if drop else 2.0},
    )  # fmt: skip
    for key, (band, _) in ASSETS.items():
        item.add_asset(key, pystac.Asset(href=str(d / f"{band}.tif"), media_type=pystac.MediaType.COG))
    path = d / "item.json"
    item.set_self_href(str(path))
    path.write_text(json.dumps(item.to_dict(transform_hrefs=False)))
    return path


def _drone(folder: Path, lon: float, lat: float, when: datetime) -> Path:
    epsg = _utm_epsg(lon, lat)
    cx, cy = Transformer.from_crs(4326, epsg, always_xy=True).transform(lon, lat)
    rng = np.random.default_rng(7)
    n = 1300  # 130 m at 10 cm: covers the first block (120 m x 90 m east and north of the point)
    a = rng.uniform(0.03, 0.12, (5, n, n)).astype(np.float32)
    a[4] = rng.uniform(0.25, 0.55, (n, n))  # NIR: canopy
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "drone-flight.tif"
    with rasterio.open(
        path, "w", driver="GTiff", height=n, width=n, count=5, dtype="float32", crs=f"EPSG:{epsg}",
        transform=from_origin(cx - 5, cy + 120, 0.1, 0.1), nodata=-9999.0, tiled=True, compress="deflate",
    ) as ds:  # fmt: skip
        ds.write(a)
        ds.update_tags(TIFFTAG_DATETIME=when.strftime("%Y:%m:%d %H:%M:%S"))
    return path


def import_demo_imagery(stack: Any, folder: Path, farms: Sequence[Any]) -> int:
    """Generate and import the demo imagery; return the number of satellite scenes imported."""
    today = datetime.now(UTC).replace(hour=3, minute=0, second=0, microsecond=0)
    n = 0
    with psycopg.connect(stack.database_url(), autocommit=True, connect_timeout=10) as conn:
        for i, f in enumerate(farms):
            for k, (when, drop) in enumerate(
                ((today - timedelta(days=6), False), (today - timedelta(days=1), True))
            ):
                item_id = f"S2B_DEMO_{f.id}_{when:%Y%m%d}"
                path = _scene(folder / "scenes", item_id, f.lon, f.lat, when, drop, seed=10 * i + k)
                import_item(conn, pystac.Item.from_file(str(path)), href=str(path), farm_id=f.id)
                n += 1
        if farms:
            f = farms[0]
            tif = _drone(folder / "drone", f.lon, f.lat, today - timedelta(days=2))
            item = item_from_geotiff(tif, profile="drone-ms")
            import_item(conn, item, href=str(tif), farm_id=f.id)
    return n
