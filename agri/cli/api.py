"""`agri api`: the HTTP API (FastAPI under uvicorn)."""

from __future__ import annotations

from typing import Annotated

import typer
import uvicorn

from agri.cli.common import fail, settings
from agri.stack.manager import Stack
from api.app import create_app
from api.deps import ApiConfig
from kernel import links
from kernel.log import configure


def api(
    host: Annotated[str | None, typer.Option(help="Address to bind [default: AGRI_API_HOST]")] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="Port [default: AGRI_API_PORT]")] = None,
    pool_size: Annotated[int, typer.Option(min=1, max=200, help="Database connections")] = 8,
    refresh_interval: Annotated[
        float, typer.Option(min=0, help="Seconds between rollup refresher rounds (0: off)")
    ] = 5.0,
    max_body: Annotated[int, typer.Option(min=1024, help="Largest request body in bytes")] = 1024 * 1024,
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs); keeps the hourly/daily rollups current."""
    s = settings()
    configure(s.log_level, s.log_format)
    stack = Stack(s)
    try:
        dsn = stack.database_url()
    except Exception as exc:  # embedded stack not initialised
        fail(f"no database: {exc} (start the stack with `agri up` or set AGRI_DATABASE_URL)")
    cfg = ApiConfig(
        database_url=dsn,
        admin_token=s.admin_token.get_secret_value() if s.admin_token else None,
        pool_size=pool_size,
        max_body_bytes=max_body,
        refresh_interval_s=refresh_interval,
        clock_skew_s=s.clock_skew_s,
        retention_days=s.retention_days,
        dashboard_url=s.dashboard_url,
        link_key=links.derive_key(s.secret_key.get_secret_value() if s.secret_key else None),
    )
    uvicorn.run(
        create_app(cfg),
        host=host or s.api_host,
        port=port or s.api_port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
    )


def register(app: typer.Typer) -> None:
    app.command()(api)
