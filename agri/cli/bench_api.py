"""`agri bench api`: hourly buckets vs a raw time_bucket scan, latest of 1,000 series, CSV export
vs COPY TO STDOUT (with the API process's peak RSS)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer

from agri.bench.api import BenchApiConfig, run_bench
from agri.cli.common import console, err_console


def bench_api(
    series: Annotated[int, typer.Option(min=1, help="Series of 1-minute data")] = 100,
    days: Annotated[int, typer.Option(min=2, help="Days of data (exported in full)")] = 70,
    bucket_days: Annotated[int, typer.Option(min=1, help="Days of hourly buckets per query")] = 30,
    latest_series: Annotated[int, typer.Option(min=1, help="Series in the latest-value query")] = 1000,
    repeats: Annotated[int, typer.Option(min=3, help="Timed requests per API measurement")] = 20,
    database_url: Annotated[
        str | None, typer.Option(help="Use this database instead of a private cluster (it is filled!)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as one JSON object")] = False,
    keep: Annotated[
        bool, typer.Option(help="Leave the private database running (its DSN is logged)")
    ] = False,
) -> None:
    """Benchmark the API's read paths against baselines measured in the same run."""
    cfg = BenchApiConfig(
        series=series,
        days=days,
        bucket_days=min(bucket_days, days - 1),
        latest_series=latest_series,
        repeats=repeats,
        database_url=database_url,
        keep=keep,
        log=lambda m: err_console.print(f"[cyan]•[/] {m}", highlight=False),
    )
    res = run_bench(cfg)
    if as_json:
        print(json.dumps(asdict(res)))
        return
    b, lt, e = res.buckets, res.latest, res.export
    console.print(
        f"hourly buckets, {series} series x {cfg.bucket_days} days ({b['rows_in_range']:,} rows):"
        f" API p50 {b['api_p50_ms']} ms, p95 {b['api_p95_ms']} ms; raw time_bucket scan p50"
        f" {b['raw_scan_p50_ms']} ms (x{b['speedup_p50']})",
        highlight=False,
    )
    console.print(
        f"latest value of {lt['series']} series: p50 {lt['p50_ms']} ms, p95 {lt['p95_ms']} ms",
        highlight=False,
    )
    console.print(
        f"CSV export of {e['rows']:,} rows: {e['api_rows_per_s']:,} rows/s vs COPY TO STDOUT"
        f" {e['copy_rows_per_s']:,} rows/s (ratio {e['ratio_to_copy']}); API peak RSS"
        f" {e['api_peak_rss_mb_after_small_export']} MB after {e['small_export_rows']:,} rows,"
        f" {e['api_peak_rss_mb_after_full_export']} MB after {e['rows']:,}",
        highlight=False,
    )


def register(bench_app: typer.Typer) -> None:
    bench_app.command("api")(bench_api)
