"""`agri dashboard`: the Streamlit dashboard (overview, farm pages, alerts) on AGRI_DASHBOARD_PORT."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from agri.cli.common import console, fail, settings
from dashboard.config import DashboardConfigError, load_config


def app_path() -> Path:
    """dashboard/app.py, found without importing it (importing a Streamlit script runs it)."""
    spec = importlib.util.find_spec("dashboard.app")
    if spec is None or spec.origin is None:
        raise RuntimeError("dashboard/app.py is missing from the installation")
    return Path(spec.origin)


def dashboard_cmd(
    port: Annotated[int | None, typer.Option(help="Port (default AGRI_DASHBOARD_PORT, 8501)")] = None,
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    check: Annotated[
        bool, typer.Option("--check", help="Validate the settings, print the URL, exit")
    ] = False,
) -> None:
    """Run the Streamlit dashboard (Chinese by default; ?lang=en for English).

    Reads AGRI_DATABASE_URL (the embedded stack's when started by `agri up`), AGRI_DASHBOARD_TILE_URL
    (optional XYZ map tiles), AGRI_DASHBOARD_URL (public base URL for alert links).
    """
    s = settings()
    try:
        cfg = load_config()
    except DashboardConfigError as exc:
        fail(str(exc), 2)
    p = port or s.dashboard_port
    if check:
        console.print(
            f"dashboard: http://{host}:{p} (database {'set' if cfg.database_url else 'NOT set'}, "
            f"tiles {'on' if cfg.dashboard_tile_url else 'off (offline background)'})",
            highlight=False,
        )
        return
    argv = [
        sys.executable, "-m", "streamlit", "run", str(app_path()),
        "--server.port", str(p), "--server.address", host, "--server.headless", "true",
        "--server.fileWatcherType", "none", "--server.runOnSave", "false",
        "--browser.gatherUsageStats", "false", "--client.toolbarMode", "minimal",
        "--theme.base", "light",
    ]  # fmt: skip
    sys.stdout.flush()
    # exec: the pid `agri up` recorded is the server's own, so `agri down` stops it directly.
    os.execv(sys.executable, argv)


def register(app: typer.Typer) -> None:
    app.command("dashboard")(dashboard_cmd)
