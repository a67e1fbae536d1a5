"""`agri sky fetch`: search a STAC API for scenes over a farm and keep only the windows it needs.

The search is a STAC API item search (``POST /search`` with ``bbox``, ``datetime``, ``collections``
and a ``query`` on ``eo:cloud_cover``), through pystac-client. For each item found, every band the
indices need (and SCL) is read over the window covering the farm's blocks only (GDAL range
requests on the cloud-optimised GeoTIFFs), written as a small local GeoTIFF under
``$AGRI_HOME/sky/<collection>/<item>/``, and the item, its assets pointing at those clips (the
original href kept as ``agri:origin``), is recorded and processed like an imported one.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pystac
import rasterio
from pystac_client import ItemSearch
from pystac_client.exceptions import APIError
from rasterio.errors import RasterioIOError
from rasterio.windows import Window
from shapely.geometry import shape
from shapely.ops import unary_union

from analytics.imagery.config import INDEX_BANDS, MIN_VALID_FRACTION
from kernel.log import event, get_logger
from sky.catalog import ImportResult, import_item, sky_dir
from sky.errors import InputError, SourceUnavailable
from sky.items import scene_from_item
from sky.raster import block_grid, reproject_lonlat
from store import sky as store_sky

log = get_logger("sky")

# GDAL settings for reading cloud-optimised GeoTIFFs over HTTP: no directory listing, merged ranges.
GDAL_HTTP_ENV = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.tiff,.TIF",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "GDAL_HTTP_MULTIPLEX": "YES",
    "GDAL_HTTP_MAX_RETRY": "3",
    "GDAL_HTTP_RETRY_DELAY": "1",
    "VSI_CACHE": "TRUE",
}


@dataclass
class FetchResult:
    found: int = 0
    imported: list[ImportResult] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # item id: reason


def search(
    stac_url: str,
    collection: str,
    bbox: tuple[float, float, float, float],
    start: date,
    end: date,
    *,
    max_cloud: float | None = None,
    max_items: int = 200,
) -> list[pystac.Item]:
    """Items of ``collection`` over ``bbox`` acquired from ``start`` to ``end`` (both inclusive)."""
    t0 = datetime.combine(start, time.min, tzinfo=UTC)
    t1 = datetime.combine(end + timedelta(days=1), time.min, tzinfo=UTC) - timedelta(seconds=1)
    query = {"eo:cloud_cover": {"lte": max_cloud}} if max_cloud is not None else None
    try:
        s = ItemSearch(
            stac_url.rstrip("/") + "/search",
            method="POST",
            bbox=list(bbox),
            datetime=[t0, t1],
            collections=[collection],
            query=query,
            max_items=max_items,
            limit=min(max_items, 100),
        )
        items = list(s.items())
    except APIError as exc:
        raise SourceUnavailable(f"STAC search at {stac_url} failed: {str(exc)[:300]}") from None
    except OSError as exc:
        raise SourceUnavailable(f"STAC API {stac_url} not reachable: {exc}") from None
    if max_cloud is not None:  # an API without the query extension ignores it: filter here too
        items = [
            it
            for it in items
            if not isinstance(it.properties.get("eo:cloud_cover"), int | float)
            or it.properties["eo:cloud_cover"] <= max_cloud
        ]
    return items


def clip_asset(href: str, union_lonlat: Any, dest: Path) -> bool:
    """Write the window of ``href`` covering ``union_lonlat`` to ``dest``; False if it does not overlap."""
    with rasterio.open(href) as ds:
        if ds.crs is None:
            raise InputError(f"{href}: raster has no CRS")
        geom = reproject_lonlat(union_lonlat, ds.crs.to_wkt())
        grid = block_grid(ds, geom.buffer(2 * abs(ds.transform.a)))
        if grid is None:
            return False
        col0 = round((grid.transform.c - ds.transform.c) / ds.transform.a)
        row0 = round((grid.transform.f - ds.transform.f) / ds.transform.e)
        c0, r0 = max(col0, 0), max(row0, 0)
        c1, r1 = min(col0 + grid.width, ds.width), min(row0 + grid.height, ds.height)
        win = Window(c0, r0, c1 - c0, r1 - r0)
        data = ds.read(window=win)
        profile = ds.profile.copy()
        profile.update(
            driver="GTiff",
            height=data.shape[1],
            width=data.shape[2],
            transform=ds.window_transform(win),
            tiled=True,
            blockxsize=256,
            blockysize=256,
            compress="deflate",
        )
        for k in ("photometric", "interleave"):
            profile.pop(k, None)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with rasterio.open(dest, "w", **profile) as out:
            out.write(data)
    return True


def fetch(
    conn: psycopg.Connection[Any],
    farm_id: str,
    start: date,
    end: date,
    *,
    home: Path,
    stac_url: str,
    collection: str,
    max_cloud: float | None = 30.0,
    min_valid: float = MIN_VALID_FRACTION,
    max_items: int = 200,
) -> FetchResult:
    blocks = store_sky.list_blocks(conn, farm_id)
    if not blocks:
        raise InputError(f"farm {farm_id!r} has no blocks: import them first (agri block import)")
    if end < start:
        raise InputError(f"--to {end} is before --from {start}")
    union = unary_union([shape(b.geometry) for b in blocks])
    items = search(stac_url, collection, union.bounds, start, end, max_cloud=max_cloud, max_items=max_items)
    res = FetchResult(found=len(items))
    needed = {b for bands in INDEX_BANDS.values() for b in bands} | {"scl"}
    clipped: list[tuple[pystac.Item, str]] = []
    with rasterio.Env(**GDAL_HTTP_ENV):
        for item in items:
            try:
                scene = scene_from_item(item)
            except InputError as exc:
                res.skipped.append(f"{item.id}: {exc}")
                continue
            folder = sky_dir(home) / (collection or "items") / item.id
            local = item.clone()
            refs = dict(scene.bands)
            if scene.scl is not None:
                refs["scl"] = scene.scl
            by_href = {r.href: nm for nm, r in refs.items() if nm in needed}
            try:
                kept: dict[str, str] = {}
                for href, nm in by_href.items():
                    dest = folder / f"{nm}.tif"
                    if clip_asset(href, union, dest):
                        kept[href] = str(dest)
            except RasterioIOError as exc:
                res.skipped.append(f"{item.id}: asset not readable ({exc})")
                event(log, "fetch_asset_failed", level=logging.WARNING, item=item.id, error=str(exc)[:200])
                continue
            if not kept:
                res.skipped.append(f"{item.id}: does not cover the farm's blocks")
                continue
            for key, asset in list(local.assets.items()):
                absolute = asset.get_absolute_href() or asset.href
                if absolute in kept:
                    asset.extra_fields["agri:origin"] = absolute
                    asset.href = kept[absolute]
                else:
                    del local.assets[key]
            item_path = folder / "item.json"
            local.set_self_href(str(item_path))
            item_path.write_text(json.dumps(local.to_dict(transform_hrefs=False), indent=1), encoding="utf-8")
            clipped.append((local, str(item_path)))
    # Processing reads the local clips, outside the HTTP settings.
    for local, href in clipped:
        res.imported.append(import_item(conn, local, href=href, farm_id=farm_id, min_valid=min_valid))
    event(
        log, "fetch_done", farm=farm_id, found=res.found, imported=len(res.imported), skipped=len(res.skipped)
    )
    return res
