"""`agri bench ingest`: sustained readings/s stored, latency, CPU per component, ratio to plain COPY."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from agri.bench.ingest.run import BenchConfig, BenchError, run_bench
from agri.cli.common import console, err_console, fail


def bench_ingest(
    rate: Annotated[float, typer.Option(min=1, help="Readings/s offered by the load generators")] = 60_000,
    duration: Annotated[float, typer.Option(min=1, help="Seconds of load")] = 30,
    nodes: Annotated[int, typer.Option(min=1, help="Simulated nodes")] = 2000,
    farms: Annotated[
        int | None, typer.Option(min=1, help="Farms (= gateways on path gateway) [default: 20; gateway: 2]")
    ] = None,
    samples: Annotated[int, typer.Option(min=1, help="Samples per message (a node batches readings)")] = 10,
    metrics: Annotated[int, typer.Option(min=1, max=6, help="Metrics per sample (+ battery and RSSI)")] = 6,
    workers: Annotated[int, typer.Option(min=1, max=32, help="Ingest worker processes")] = 2,
    publishers: Annotated[int, typer.Option(min=1, max=32, help="Load generator processes")] = 2,
    path: Annotated[
        str,
        typer.Option(
            help="direct: node messages; batch: pre-built gateway envelopes (--batch-size each); "
            "gateway: nodes -> farm broker -> one `agri gateway` per farm -> central broker"
        ),
    ] = "direct",
    batch_size: Annotated[int, typer.Option(min=1, help="Node messages per gateway envelope")] = 50,
    receive_maximum: Annotated[int, typer.Option(min=2, max=65535, help="Per worker (MQTT 5)")] = 1000,
    copy_rows: Annotated[
        int | None,
        typer.Option(min=1000, help="Rows in the plain-COPY baseline [default: all the stored rows]"),
    ] = None,
    copy_runs: Annotated[
        int, typer.Option(min=1, max=20, help="Times the baseline is timed (median reported)")
    ] = 1,
    database_url: Annotated[
        str | None, typer.Option(help="Use this TimescaleDB instead of a private one (writes bench farms)")
    ] = None,
    mqtt_url: Annotated[
        str | None,
        typer.Option(help="Use this MQTT 5 broker (an account that may publish and read agri/v1/#)"),
    ] = None,
    keep: Annotated[bool, typer.Option(help="Keep the temp dir (logs, traces)")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
) -> None:
    """Simulated fleet -> MQTT QoS 1 -> ingest -> TimescaleDB; numbers plus the ratio to a plain COPY."""

    def log(msg: str) -> None:
        err_console.print(f"[dim]bench:[/] {msg}", highlight=False)

    try:
        cfg = BenchConfig(
            rate=rate,
            duration=duration,
            nodes=nodes,
            farms=farms or (2 if path == "gateway" else 20),
            samples=samples,
            metrics=metrics,
            workers=workers,
            publishers=publishers,
            path=path,
            batch_size=batch_size,
            receive_maximum=receive_maximum,
            copy_rows=copy_rows,
            copy_runs=copy_runs,
            database_url=database_url,
            mqtt_url=mqtt_url,
            keep=keep,
            log=log,
        )
        res = run_bench(cfg)
    except BenchError as exc:
        fail(str(exc))
    if as_json:
        print(json.dumps(res))
        return
    c = res["config"]
    console.print(
        f"[bold]ingest benchmark[/] path={c['path']} nodes={c['nodes']} readings/msg={c['readings_per_msg']} "
        f"workers={c['workers']} window={res['window_s']} s",
        highlight=False,
    )
    lat = f"{res['p50_latency_s']} / {res['p99_latency_s']} / {res['max_latency_s']}"
    counts = f"{res['published']:,} / {res['stored']:,} / {res['lost']} / {res['duplicates']}"
    load = f"{res['loadgen_readings_per_s']:,} ({res['loadgen_msgs_per_s']:,} msgs/s)"
    cpu = ", ".join(f"{k} {v}" for k, v in res["cpu_cores"].items())
    cpu += f"; whole machine {res['machine_busy_cores']} of {res['machine_cores']}"
    cpu += f" (other processes {res['other_processes_cores']})"
    eff = (
        f"{res['readings_per_cpu_s']:,} vs {res['copy_rows_per_cpu_s']:,} (ratio {res['cpu_ratio_to_copy']})"
    )
    copy = f"{res['copy_rows_per_s']:,}"
    if len(res["copy_rows_per_s_runs"]) > 1:
        copy += " (median of " + ", ".join(f"{r:,}" for r in res["copy_rows_per_s_runs"]) + ")"
    rows = [
        ("sustained readings/s stored", f"{res['readings_per_s']:,}"),
        ("plain binary COPY rows/s (same rows, same DB)", copy),
        ("ratio to plain COPY", f"{res['ratio_to_copy']} ({res['copy_rows']:,} rows)"),
        (
            f"  COPY's first {res['copy_first_rows']:,} rows alone",
            f"{res['copy_first_rows_per_s']:,} rows/s, ratio {res['ratio_to_copy_first_rows']}",
        ),
        ("published / stored / lost / duplicates", counts),
        ("publish-to-commit latency p50 / p99 / max (s)", lat),
        ("load generator readings/s", load),
        ("CPU cores used", cpu),
        ("readings per CPU-second: pipeline vs plain COPY", eff),
    ]
    for k, v in rows:
        console.print(f"  {k:<48} {v}", highlight=False)


def register(bench_app: typer.Typer) -> None:
    bench_app.command("ingest")(bench_ingest)
