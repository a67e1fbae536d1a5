"""`agri bench alerts`: evaluated readings/s vs ingest's maximum rate; alert latencies at half of it."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from agri.bench.alerts import AlertBenchConfig, run_alert_bench
from agri.cli.common import console, err_console


def bench_alerts(
    rate: Annotated[
        float, typer.Option(min=1, help="Readings/s offered to ingest (above its maximum)")
    ] = 100_000,
    duration: Annotated[float, typer.Option(min=1, help="Seconds of ingest load")] = 10,
    nodes: Annotated[int, typer.Option(min=1, help="Simulated nodes")] = 2000,
    workers: Annotated[int, typer.Option(min=1, max=32, help="Ingest worker processes")] = 2,
    alert_workers: Annotated[
        int, typer.Option(min=1, max=32, help="Evaluator partitions (processes) for the scale-out figure")
    ] = 2,
    latency_s: Annotated[float, typer.Option(min=2, help="Seconds of the latency phase")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
) -> None:
    """Ingest at its maximum, then the evaluator over all of it, then live latencies at half the rate."""

    def log(msg: str) -> None:
        err_console.print(f"[dim]bench:[/] {msg}", highlight=False)

    cfg = AlertBenchConfig(
        rate=rate,
        duration=duration,
        nodes=nodes,
        workers=workers,
        alert_workers=alert_workers,
        latency_s=latency_s,
        log=log,
    )
    res = run_alert_bench(cfg)
    if as_json:
        console.print_json(json.dumps(res))
        return
    lat = res["latency"]
    console.print(
        f"ingest (same run):      {res['ingest_readings_per_s']:>10,} readings/s"
        f" ({res['ingest_workers']} workers)"
    )
    console.print(f"evaluated, 1 worker:    {res['evaluated_readings_per_s']:>10,} readings/s")
    console.print(f"ratio to ingest:        {res['ratio_to_ingest']}")
    if res["partitioned"]:
        part = res["partitioned"]
        once_n = "yes" if part["each_once"] else "NO"
        console.print(
            f"evaluated, {res['alert_workers']} workers:   {res['evaluated_readings_per_s_all_workers']:>10,}"
            f" readings/s (each reading once: {once_n})"
        )
        console.print(f"ratio to ingest:        {res['ratio_to_ingest_all_workers']}")
    thr = res["throughput"]
    once = "yes" if thr["each_once"] else "NO"
    console.print(f"each reading once:      {once} ({thr['evaluated']:,} of {thr['stored_in_feed']:,})")
    achieved, opened = lat["achieved_readings_per_s"], lat["alerts_opened"]
    console.print(f"latency phase:          {achieved:,} readings/s, {opened} alerts")
    console.print(f"committed -> open (s):  {lat['committed_to_open_s']}")
    console.print(f"open -> webhook (s):    {lat['open_to_webhook_s']}")


def register(app: typer.Typer) -> None:
    app.command("alerts")(bench_alerts)
