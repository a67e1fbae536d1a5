"""The `agri` command: one entry point for every part of the platform."""

from __future__ import annotations

import faulthandler
import signal

import typer

from agri.cli import stack
from agri.cli.common import register_modules

app = typer.Typer(
    name="agri",
    help="Sky-air-ground integrated agricultural IoT platform (天空地一体化农业物联网管理平台).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command()(stack.up)
app.command()(stack.down)
app.command()(stack.status)
app.command()(stack.demo)
app.add_typer(stack.db_app, name="db")

# Subsystems register their commands in their own module: `register(app)`.
_SUBCOMMAND_MODULES = (
    "agri.cli.ingest",  # agri ingest
    "agri.cli.gateway",  # agri gateway
    "agri.cli.api",  # agri api
    "agri.cli.dashboard",  # agri dashboard
    "agri.cli.node",  # agri node add | emulate
    "agri.cli.flash",  # agri flash
    "agri.cli.anomaly",  # agri anomaly score
    "agri.cli.block",  # agri block import | list | place
    "agri.cli.sky",  # agri sky import | fetch | render | series | fuse
    "agri.cli.bench",  # agri bench ingest | anomaly
    "agri.cli.token",  # agri token create | list | revoke
    "agri.cli.alerts",  # agri alerts [ack | resolve | list], agri commissioner add | list | assign
)
register_modules(app, _SUBCOMMAND_MODULES)


def main() -> None:
    # `kill -USR1 <pid>` writes every thread's stack to stderr (a service's log): where a process
    # that does not stop or does not answer is waiting, without stopping it
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    app()


if __name__ == "__main__":
    main()
