"""`agri bench ...`: benchmarks that print numbers and ratios against a baseline run alongside.

Each benchmark lives in its own module exposing ``register(bench_app)``.
"""

from __future__ import annotations

import typer

from agri.cli.common import register_modules

bench_app = typer.Typer(
    help="Benchmarks (numbers + ratios to a baseline measured in the same run)", no_args_is_help=True
)

_BENCH_MODULES = (
    "agri.cli.bench_ingest",
    "agri.cli.bench_anomaly",
    "agri.cli.bench_gateway",
    "agri.cli.bench_wire",
    "agri.cli.bench_api",
    "agri.cli.bench_alerts",
    "agri.cli.bench_sky",
    "agri.cli.bench_dashboard",
)


def register(app: typer.Typer) -> None:
    register_modules(bench_app, _BENCH_MODULES)
    app.add_typer(bench_app, name="bench")
