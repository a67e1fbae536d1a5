"""`agri sky import|fetch|render|series|fuse`: satellite and drone imagery per field block."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from agri.cli.common import console, fail, settings
from agri.cli.sky_common import connect
from analytics.imagery import INDICES, STATS
from sky.catalog import collect, import_item
from sky.errors import InputError, SourceUnavailable
from sky.fetch import fetch as fetch_scenes
from sky.fusion import farm_fusion
from sky.items import PROFILES
from sky.process import BlockResult
from sky.render import render_latest
from store import sky as store_sky

sky_app = typer.Typer(help="Satellite and drone imagery per field block (STAC)", no_args_is_help=True)


def _report(item_id: str, source: str, when: datetime, results: list[BlockResult]) -> None:
    stored = [r for r in results if r.status == "stored"]
    console.print(
        f"{escape(item_id)} ({source}, {when:%Y-%m-%d %H:%M} UTC): {len(stored)} block(s) stored,"
        f" {sum(r.status == 'low_valid' for r in results)} below the valid fraction,"
        f" {sum(r.status == 'outside' for r in results)} outside"
    )
    for r in results:
        ndvi = r.stats.get("ndvi")
        mean = f"NDVI mean {ndvi.mean:.3f}" if ndvi is not None and math.isfinite(ndvi.mean) else ""
        valid = f"valid {r.valid:.2f}" if r.valid is not None else ""
        console.print(f"  {r.farm_id}/{r.block_id:<28} {r.status:<9} {valid:<11} {mean}")


def _parse_when(s: str | None) -> datetime | None:
    if s is None:
        return None
    try:
        t = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        fail(f"--datetime {s!r}: not an ISO 8601 time (e.g. 2026-06-01T03:00:00Z)")
    return t if t.tzinfo else t.replace(tzinfo=UTC)


@sky_app.command("import")
def import_(
    target: Annotated[
        str, typer.Argument(help="STAC item JSON, ItemCollection, GeoTIFF, URL, or a directory")
    ],
    farm: Annotated[str | None, typer.Option("--farm", help="Only this farm's blocks (default: all)")] = None,
    profile: Annotated[
        str | None,
        typer.Option("--profile", help=f"Plain GeoTIFFs: {', '.join(PROFILES)} (default drone-ms)"),
    ] = None,
    bands: Annotated[
        str | None,
        typer.Option("--bands", help="Plain GeoTIFFs: band order, e.g. blue,green,red,rededge,nir"),
    ] = None,
    when: Annotated[
        str | None, typer.Option("--datetime", help="Plain GeoTIFFs: acquisition time (ISO)")
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option("--baseline", help="Plain Sentinel-2 GeoTIFFs: processing baseline, e.g. 05.10"),
    ] = None,
    min_valid: Annotated[
        float | None, typer.Option("--min-valid", help="Skip block-dates with a smaller valid fraction")
    ] = None,
) -> None:
    """Record STAC items (or GeoTIFFs as derived items) and store per-block index statistics."""
    s = settings()
    band_names = tuple(b.strip() for b in bands.split(",")) if bands else None
    with connect() as conn:
        try:
            found = collect(
                target,
                home=s.home,
                profile=profile,
                bands=band_names,
                when=_parse_when(when),
                processing_baseline=baseline,
            )
            for item, href in found:
                r = import_item(
                    conn,
                    item,
                    href=href,
                    farm_id=farm,
                    min_valid=s.sky_min_valid if min_valid is None else min_valid,
                )
                _report(r.item_id, r.source, r.when, r.blocks)
        except (InputError, SourceUnavailable) as exc:
            fail(escape(str(exc)))


def _day(s: str, opt: str) -> date:
    try:
        return date.fromisoformat(s)
    except ValueError:
        fail(f"{opt} {s!r}: not a date (YYYY-MM-DD)")


@sky_app.command("fetch")
def fetch(
    farm: Annotated[str, typer.Option("--farm", help="Farm id")],
    start: Annotated[str, typer.Option("--from", help="First day (YYYY-MM-DD)")],
    end: Annotated[str, typer.Option("--to", help="Last day (YYYY-MM-DD)")],
    max_cloud: Annotated[float, typer.Option("--max-cloud", help="Largest scene cloud cover (%)")] = 30.0,
    stac_url: Annotated[
        str | None, typer.Option("--stac-url", help="STAC API (default AGRI_SKY_STAC_URL)")
    ] = None,
    collection: Annotated[
        str | None, typer.Option("--collection", help="Collection (default AGRI_SKY_COLLECTION)")
    ] = None,
) -> None:
    """Search a STAC API for scenes over the farm's blocks; read only the windows covering them."""
    s = settings()
    d0, d1 = _day(start, "--from"), _day(end, "--to")
    with connect() as conn:
        try:
            res = fetch_scenes(
                conn,
                farm,
                d0,
                d1,
                home=s.home,
                stac_url=stac_url or s.sky_stac_url,
                collection=collection or s.sky_collection,
                max_cloud=max_cloud,
                min_valid=s.sky_min_valid,
            )
        except (InputError, SourceUnavailable) as exc:
            fail(escape(str(exc)))
    console.print(f"found {res.found} scene(s), imported {len(res.imported)}")
    for r in res.imported:
        _report(r.item_id, r.source, r.when, r.blocks)
    for why in res.skipped:
        console.print(f"  skipped {escape(why)}")


@sky_app.command("render")
def render(
    farm: Annotated[str, typer.Option("--farm", help="Farm id")],
    index: Annotated[str, typer.Option("--index", help=f"One of {', '.join(INDICES)}")] = "ndvi",
    out: Annotated[
        Path | None, typer.Option("--out", help="PNG file (default $AGRI_HOME/sky/FARM-INDEX.png)")
    ] = None,
    source: Annotated[
        str | None, typer.Option("--source", help="satellite or drone (default: newest)")
    ] = None,
) -> None:
    """Write a colour-mapped PNG of the farm's latest index and print its WGS 84 bounds (JSON)."""
    s = settings()
    with connect() as conn:
        try:
            r = render_latest(conn, farm, index, source)
        except InputError as exc:
            fail(escape(str(exc)))
    path = out or s.home / "sky" / f"{farm}-{index}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(r.png)
    w, so, e, n = r.bounds
    print(json.dumps({"png": str(path), "item": r.item_id, "datetime": r.when.isoformat(), "index": index,
                      "bounds": {"west": w, "south": so, "east": e, "north": n},
                      "range": [r.vmin, r.vmax], "size": [r.width, r.height]}))  # fmt: skip


@sky_app.command("series")
def series(
    farm: Annotated[str, typer.Option("--farm", help="Farm id")],
    block: Annotated[str, typer.Option("--block", help="Block id")],
    index: Annotated[str, typer.Option("--index", help=f"One of {', '.join(INDICES)}")] = "ndvi",
    stat: Annotated[str, typer.Option("--stat", help=f"One of {', '.join(STATS)}")] = "mean",
    source: Annotated[str, typer.Option("--source", help="satellite or drone")] = "satellite",
) -> None:
    """A block's series of one index statistic (CSV: time,value)."""
    if index not in INDICES or stat not in STATS:
        fail(f"--index must be one of {', '.join(INDICES)} and --stat one of {', '.join(STATS)}")
    with connect() as conn:
        try:
            rows = store_sky.block_series(conn, farm, block, f"{index}_{stat}", source=source)
        except ValueError as exc:
            fail(escape(str(exc)))
    print("time,value")
    for t, v in rows:
        print(f"{t.isoformat()},{v:.6g}")


@sky_app.command("fuse")
def fuse(farm: Annotated[str, typer.Option("--farm", help="Farm id")]) -> None:
    """Blocks whose NDVI falls against the farm's other blocks, read with their soil moisture."""
    with connect() as conn:
        try:
            flags = farm_fusion(conn, farm)
        except InputError as exc:
            fail(escape(str(exc)))
    for f in flags:
        console.print(f"{f.block_id:<28} {f.flag:<17} {escape(f.reason)}")


def register(app: typer.Typer) -> None:
    app.add_typer(sky_app, name="sky")
