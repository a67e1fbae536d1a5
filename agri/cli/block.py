"""`agri block import|list|place`: field blocks (polygons) of a farm."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from agri.cli.common import console, fail
from agri.cli.sky_common import connect
from store import sky as store_sky
from store.blockgeo import InputError, import_blocks_file

block_app = typer.Typer(
    help="Field blocks: orchard blocks, tea terraces, ponds, barns (polygons)", no_args_is_help=True
)


@block_app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="GeoJSON (WGS 84) or KML file of polygons")],
    farm: Annotated[str, typer.Option("--farm", help="Farm id")],
) -> None:
    """Import blocks from a file: every feature is checked first, and nothing is written on any error."""
    with connect() as conn:
        try:
            blocks = import_blocks_file(conn, farm, file)
        except InputError as exc:
            fail(escape(str(exc)))
    for b in blocks:
        console.print(f"{b.block_id:<28} {b.kind:<13} {b.area_m2 / 10_000:9.3f} ha  {escape(b.name)}")
    console.print(f"imported {len(blocks)} block(s) into farm {farm}")


@block_app.command("list")
def list_(
    farm: Annotated[str, typer.Option("--farm", help="Farm id")],
    as_json: Annotated[bool, typer.Option("--json", help="GeoJSON FeatureCollection")] = False,
) -> None:
    """The farm's blocks."""
    with connect() as conn:
        blocks = store_sky.list_blocks(conn, farm)
    if as_json:
        feats = [
            {"type": "Feature", "id": b.block_id, "geometry": b.geometry,
             "properties": {"name": b.name, "kind": b.kind, "area_m2": round(b.area_m2, 1)}}
            for b in blocks
        ]  # fmt: skip
        print(json.dumps({"type": "FeatureCollection", "features": feats}, ensure_ascii=False))
        return
    for b in blocks:
        console.print(f"{b.block_id:<28} {b.kind:<13} {b.area_m2 / 10_000:9.3f} ha  {escape(b.name)}")


@block_app.command("place")
def place(
    node: Annotated[str, typer.Argument(help="Node id")],
    block: Annotated[str, typer.Argument(help="Block id ('-' takes the node out of its block)")],
    farm: Annotated[str, typer.Option("--farm", help="Farm id")],
) -> None:
    """Place a sensor node in a block (its soil moisture then explains the block's NDVI)."""
    with connect() as conn:
        try:
            store_sky.place_node(conn, farm, node, None if block == "-" else block)
        except ValueError as exc:
            fail(escape(str(exc)))
    console.print(f"node {node} of farm {farm}: block {block}")


def register(app: typer.Typer) -> None:
    app.add_typer(block_app, name="block")
