"""`agri bench sky`: zonal statistics per block over a full Sentinel-2 tile and a drone orthomosaic."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from agri.bench.sky import cache_dir, run
from agri.cli.common import console


def register(bench_app: typer.Typer) -> None:
    bench_app.command("sky")(sky)


def sky(
    blocks: Annotated[int, typer.Option("--blocks", help="Block polygons over the Sentinel-2 tile")] = 500,
    drone_blocks: Annotated[
        int, typer.Option("--drone-blocks", help="1 ha blocks over the orthomosaic")
    ] = 50,
    no_drone: Annotated[bool, typer.Option("--no-drone", help="Skip the drone orthomosaic")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
) -> None:
    """Per-block NDVI statistics, windows only, against reading the whole tile; drone indices per block."""
    console.print(f"inputs cached under {cache_dir()} (generated on first run)")
    rep = run(blocks, drone_blocks, drone=not no_drone, log=console.print)
    if as_json:
        print(json.dumps(rep.as_dict()))
        return
    w, sc, whole = rep.s2_windows, rep.s2_scattered, rep.s2_whole
    console.print(f"Sentinel-2 tile 10,980 x 10,980 (B04+B08+SCL), {w['blocks']:.0f} blocks of 1-16 ha:")
    for label, r in (("windows, 25 farms", w), ("windows, scattered", sc), ("whole-tile read", whole)):
        console.print(
            f"  {label:<19} {r['seconds']:6.2f} s (CPU {r['cpu_seconds']:5.2f} s)"
            f"   peak memory {r['peak_mb']:5.0f} MB"
        )
    console.print("  targets: windows <= 10 s, <= 1 GB; the whole-tile read computes no statistics")
    console.print(
        f"  ratio windows / whole-tile read: {w['seconds'] / whole['seconds']:.3f} (farms),"
        f" {sc['seconds'] / whole['seconds']:.3f} (scattered)"
    )
    if rep.drone:
        d = rep.drone
        console.print(
            f"Drone 20,000 x 20,000 x 5 bands at 5 cm, {d['blocks']:.0f} blocks of 1 ha"
            f" ({d['block_pixels'] / 1e6:.0f} M block pixels, {d['indices']:.0f} indices + canopy):"
        )
        console.print(
            f"  {d['seconds']:6.2f} s (CPU {d['cpu_seconds']:5.2f} s)   peak memory {d['peak_mb']:5.0f} MB"
            "   (target <= 20 s)"
        )
