"""The imagery catalog: record STAC items (local files, derived from GeoTIFFs, or fetched) and
process them for the blocks they cover."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pystac
from shapely.geometry import box, shape

from analytics.imagery.config import MIN_VALID_FRACTION
from kernel.log import event, get_logger
from sky.errors import InputError, SourceUnavailable
from sky.items import Scene, item_from_geotiff, processing_baseline, read_item, scene_from_item
from sky.process import BlockResult, process_scene
from sky.render import render_item
from store import sky as store_sky

_TIFF_SUFFIXES = (".tif", ".tiff")
log = get_logger("sky")


@dataclass
class ImportResult:
    item_id: str
    item_pk: int
    source: str
    when: datetime
    blocks: list[BlockResult] = field(default_factory=list)


def sky_dir(home: Path) -> Path:
    return home / "sky"


def record_item(conn: psycopg.Connection[Any], item: pystac.Item, scene: Scene, href: str | None) -> int:
    cc = item.properties.get("eo:cloud_cover")
    stac = item.to_dict(include_self_link=False, transform_hrefs=False)
    for key, a in stac.get("assets", {}).items():  # stored absolute, so the row alone finds the files
        a["href"] = item.assets[key].get_absolute_href() or a["href"]
    bbox = tuple(item.bbox[:4]) if item.bbox else None
    return store_sky.upsert_item(
        conn,
        collection=scene.collection,
        item_id=item.id,
        source=scene.source,
        when=scene.when,
        cloud_cover=float(cc) if isinstance(cc, int | float) else None,
        processing_baseline=processing_baseline(item),
        bbox=bbox,  # type: ignore[arg-type]
        href=href,
        stac=stac,
    )


def blocks_for_item(
    conn: psycopg.Connection[Any], item: pystac.Item, farm_id: str | None
) -> list[store_sky.Block]:
    """Blocks the item's footprint touches (of one farm, or of every farm)."""
    blocks = store_sky.list_blocks(conn, farm_id) if farm_id else store_sky.list_blocks(conn)
    if item.geometry:
        foot = shape(item.geometry)
    elif item.bbox:
        foot = box(*item.bbox[:4])
    else:
        return blocks
    return [b for b in blocks if foot.intersects(shape(b.geometry))]


def import_item(
    conn: psycopg.Connection[Any],
    item: pystac.Item,
    *,
    href: str | None,
    farm_id: str | None = None,
    min_valid: float = MIN_VALID_FRACTION,
) -> ImportResult:
    scene = scene_from_item(item)
    pk = record_item(conn, item, scene, href)
    blocks = blocks_for_item(conn, item, farm_id)
    results = process_scene(conn, pk, scene, blocks, min_valid=min_valid)
    stored_farms = sorted({r.farm_id for r in results if r.status == "stored"})
    for farm in stored_farms:
        update_overlay(conn, item, pk, scene, [b for b in blocks if b.farm_id == farm])
    return ImportResult(item.id, pk, scene.source, scene.when, results)


def update_overlay(
    conn: psycopg.Connection[Any],
    item: pystac.Item,
    item_pk: int,
    scene: Scene,
    blocks: list[store_sky.Block],
    index: str = "ndvi",
) -> bool:
    """Render the farm's map overlay from this item and keep it if it is the newest; a failure to
    render is logged, never fatal to the import (the statistics are already stored)."""
    try:
        r = render_item(item, blocks, index)
    except (InputError, SourceUnavailable) as exc:
        event(
            log,
            "overlay_skipped",
            level=logging.WARNING,
            farm=blocks[0].farm_id,
            item=item.id,
            reason=str(exc),
        )
        return False
    return store_sky.save_overlay(
        conn,
        store_sky.Overlay(
            blocks[0].farm_id, index, scene.source, item_pk, scene.when, r.png, r.bounds, r.vmin, r.vmax
        ),
    )


def _items_in_json(path: Path) -> list[pystac.Item]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not readable JSON ({exc})") from None
    if isinstance(doc, dict) and doc.get("type") == "FeatureCollection":
        items = []
        for i, f in enumerate(doc.get("features") or [], start=1):
            try:
                it = pystac.Item.from_dict(f)
            except (pystac.STACError, KeyError, TypeError, ValueError) as exc:
                raise InputError(f"{path}: feature {i} is not a STAC item ({exc})") from None
            it.set_self_href(str(path.resolve()))
            items.append(it)
        return items
    return [read_item(str(path))]


def collect(
    target: str,
    *,
    home: Path,
    profile: str | None,
    bands: tuple[str, ...] | None,
    when: datetime | None,
    processing_baseline: str | None,
) -> list[tuple[pystac.Item, str]]:
    """(item, where it lives) for a STAC item file, an ItemCollection, a GeoTIFF or a directory."""
    if "://" in target and not target.startswith("file://"):
        if target.lower().endswith(_TIFF_SUFFIXES):
            paths: list[str] = [target]
        else:
            return [(read_item(target), target)]
    else:
        p = Path(target.removeprefix("file://"))
        if not p.exists():
            raise InputError(f"{target}: no such file or directory")
        if p.is_dir():
            # A folder's GeoTIFFs are the assets of its items when it has item JSON files; only a
            # folder without any is a set of plain GeoTIFFs.
            files = sorted(x for x in p.rglob("*") if x.is_file())
            with_items = {x.parent for x in files if x.suffix.lower() == ".json"}
            paths = [
                str(x)
                for x in files
                if x.suffix.lower() == ".json"
                or (x.suffix.lower() in _TIFF_SUFFIXES and x.parent not in with_items)
            ]
            if not paths:
                raise InputError(f"{target}: no STAC item (.json) or GeoTIFF in the directory")
        else:
            paths = [str(p)]
    out: list[tuple[pystac.Item, str]] = []
    for path in paths:
        if path.lower().endswith(_TIFF_SUFFIXES):
            item = item_from_geotiff(
                path, profile=profile, bands=bands, when=when, processing_baseline=processing_baseline
            )
            dest = sky_dir(home) / "items" / f"{item.id}.json"
            dest.parent.mkdir(parents=True, exist_ok=True)
            item.set_self_href(str(dest))
            dest.write_text(json.dumps(item.to_dict(transform_hrefs=False), indent=1), encoding="utf-8")
            out.append((item, str(dest)))
        else:
            out.extend((it, path) for it in _items_in_json(Path(path)))
    return out
