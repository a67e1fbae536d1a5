"""`agri bench dashboard`: overview and farm-page times (cold and warm) on 200 nodes x 30 days."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from agri.bench.dashboard import DashBenchConfig, run
from agri.cli.common import console


def register(bench_app: typer.Typer) -> None:
    bench_app.command("dashboard")(dashboard)


def dashboard(
    nodes: Annotated[int, typer.Option(min=1, help="Nodes (4 per farm, every farm kind in turn)")] = 200,
    days: Annotated[float, typer.Option(min=0.1, help="Days of data ending now")] = 30.0,
    interval_s: Annotated[int, typer.Option(min=10, help="Seconds between readings")] = 60,
    metrics_per_node: Annotated[
        int, typer.Option(min=1, help="Sensor metrics per node (+ battery, RSSI)")
    ] = 2,
    repeats: Annotated[int, typer.Option(min=1, help="Cold/warm runs of each page")] = 3,
    database_url: Annotated[
        str | None, typer.Option(help="Use this (already seeded or empty) database instead of a private one")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
) -> None:
    """Time the overview (cold, warm) and a farm page with 30 days on its charts (cold, warm)."""
    cfg = DashBenchConfig(
        nodes=nodes,
        days=days,
        interval_s=interval_s,
        metrics_per_node=metrics_per_node,
        repeats=repeats,
        database_url=database_url,
    )
    out = run(cfg, log=lambda m: console.print(f"[dim]{m}[/]", highlight=False) if not as_json else None)
    if as_json:
        print(json.dumps(out))
        return
    console.print(f"first run after start (imports)  {out['first_run_after_start_s']:.3f} s", highlight=False)
    console.print(
        f"AppTest harness, trivial script  {out['harness_trivial_script_s']:.3f} s", highlight=False
    )
    for page, st in out["pages"].items():
        console.print(f"{page:15s} median {st['median_s']:.3f} s   max {st['max_s']:.3f} s", highlight=False)
    for k, v in out["baseline"].items():
        console.print(f"baseline {k:28s} {v:.3f} s", highlight=False)
    for k, v in out["ratios"].items():
        console.print(f"ratio {k:32s} {v}", highlight=False)
    for k, v in out["targets"].items():
        console.print(f"target {k:24s} {'met' if v else 'NOT met'}", highlight=False)
