"""`agri up`, `agri down`, `agri status`, `agri demo`, `agri db ...`."""

from __future__ import annotations

import json
import signal
import threading
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from agri.cli.common import console, fail, settings
from agri.stack import demo as demo_mod
from agri.stack.manager import Stack
from agri.stack.proc import StackError
from store.migrate import MigrationError, migrate

if TYPE_CHECKING:
    from agri.stack.manager import Stack


def _stack() -> Stack:

    return Stack(settings())


def up(
    service: Annotated[
        list[str] | None, typer.Option("--service", "-s", help="Start only these services")
    ] = None,
) -> None:
    """Start the database, the broker and the services (embedded unless AGRI_*_URL are set)."""

    st = _stack()
    try:
        st.up(services=service, log=lambda m: console.print(f"[green]✓[/] {m}", highlight=False))
    except (StackError, MigrationError) as exc:
        fail(str(exc))
    console.print(f"data: {st.home}   status: agri status   stop: agri down", highlight=False)


def down() -> None:
    """Stop every service and the embedded database and broker."""
    try:
        _stack().down(log=lambda m: console.print(f"[yellow]■[/] {m}", highlight=False))
    except StackError as exc:
        fail(str(exc))


def status(as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False) -> None:
    """Health of each component; exit code 0 only if all are running."""
    st = _stack().status()
    if as_json:
        print(json.dumps(st, ensure_ascii=False, default=str))
    else:
        table = Table("component", "state", "address", "details")
        for name, comp in st.items():
            state = comp["state"]
            color = {"running": "green", "stopped": "yellow"}.get(state, "red")
            extra = {k: v for k, v in comp.items() if k not in ("state", "address") and v is not None}
            table.add_row(
                name,
                f"[{color}]{state}[/]",
                comp.get("address") or "",
                ", ".join(f"{k}={v}" for k, v in extra.items()),
            )
        console.print(table)
    raise typer.Exit(0 if all(c["state"] == "running" for c in st.values()) else 1)


def demo(
    fast: Annotated[
        bool,
        typer.Option("--fast", help="Compress time (seconds instead of minutes): for tests and a quick look"),
    ] = False,
    scale: Annotated[
        float, typer.Option(help="Share of the simulated nodes to run (1.0: 200 nodes)", min=0.01, max=1.0)
    ] = 1.0,
    history_days: Annotated[
        float, typer.Option(help="Days of history sent through ingest before going live", min=0, max=30)
    ] = 7.0,
    firmware: Annotated[
        bool, typer.Option(help="Run 8 nodes on the real MicroPython firmware (unix port)")
    ] = True,
    sky: Annotated[bool, typer.Option(help="Import generated satellite scenes and a drone flight")] = True,
    quiesce: Annotated[
        bool,
        typer.Option(help="Once the scenarios are over, stop every publisher and write the counts (tests)"),
    ] = False,
) -> None:
    """The whole platform with a simulated Wanzhou district and scripted scenarios; Ctrl-C stops it."""

    st = _stack()
    try:
        lock = demo_mod.demo_lock(st.home)
    except StackError as exc:
        fail(str(exc))  # before anything starts: the running demo's stack is left alone
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    # Ctrl-C is KeyboardInterrupt (it also interrupts the start-up), even when the demo was started
    # with SIGINT ignored, as a shell's background job is: Python installs that handler only when it
    # finds SIGINT not ignored, and then SIGINT did nothing (found by a CI run that hung)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    opts = demo_mod.DemoOptions(
        fast=fast, scale=scale, history_days=history_days, firmware=firmware, sky=sky, quiesce=quiesce
    )
    try:
        demo_mod.run(st, stop, console, opts)
    except (StackError, MigrationError) as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        pass
    finally:
        console.print("stopping…")
        st.down(log=lambda m: console.print(f"[yellow]■[/] {m}", highlight=False))
        lock.close()


db_app = typer.Typer(help="Database schema", no_args_is_help=True)


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply pending schema migrations (idempotent)."""

    st = _stack()
    try:
        applied = migrate(st.database_url())
    except MigrationError as exc:
        fail(str(exc))
    console.print(f"applied: {applied}" if applied else "schema is up to date")
