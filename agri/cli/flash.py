"""`agri flash`: build the node firmware, copy it and the node config to a board, verify, reset."""

from __future__ import annotations

import contextlib
import enum
import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from agri.cli.common import console, err_console, settings
from agri.flash.build import build_firmware, default_firmware_dir
from agri.flash.config import load_node_config
from agri.flash.errors import FlashError
from agri.flash.first_message import FirstMessageWaiter
from agri.flash.flasher import FlashOptions, FlashResult
from agri.flash.flasher import flash as run_flash
from agri.flash.plan import make_plan
from agri.stack.manager import Stack


class ResetChoice(enum.StrEnum):
    hard = "hard"
    soft = "soft"
    none = "none"


class RichReporter:
    """Step lines and a byte-accurate progress bar over all files being copied."""

    def __init__(self) -> None:
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._base = 0
        self._size = 0

    def step(self, message: str) -> None:
        console.print(f"[cyan]•[/] {escape(message)}", highlight=False)

    def copy_start(self, n_files: int, total_bytes: int) -> None:
        if n_files == 0:
            console.print("[green]✓[/] the device already has every file (nothing to copy)")
            return
        console.print(f"[cyan]•[/] copying {n_files} files ({total_bytes} bytes)", highlight=False)
        self._progress = Progress(
            TextColumn("{task.description}", style="cyan"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self._task = self._progress.add_task("", total=total_bytes)
        self._progress.start()

    def file_start(self, target: str, size: int) -> None:
        if self._progress is not None and self._task is not None:
            self._base += self._size
            self._size = size
            self._progress.update(self._task, description=target, completed=self._base)

    def file_progress(self, done: int, size: int) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=self._base + done)

    def copy_end(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def _fail(exc: FlashError, done: list[str] | None = None) -> typer.Exit:
    where = f", file {exc.path}" if exc.path else ""
    err_console.print(
        f"[bold red]error:[/] {escape(f'flash failed at step {exc.step}{where}: {exc.detail}')}",
        highlight=False,
        soft_wrap=True,
    )
    if exc.hint:
        err_console.print(f"[yellow]hint:[/] {escape(exc.hint)}", highlight=False, soft_wrap=True)
    return typer.Exit(1)


def _plan_table(plan: Any) -> Table:
    table = Table(title="flash plan", title_justify="left")
    table.add_column("device path", no_wrap=True)
    table.add_column("bytes", justify="right", no_wrap=True)
    table.add_column("sha256", no_wrap=True)
    table.add_column("from", overflow="fold")
    for f in plan.files:
        src = f.source
        with contextlib.suppress(ValueError):
            src = str(Path(src).relative_to(Path.cwd()))
        table.add_row(f.target, str(f.size), f.sha256[:16], src + (" (mpy-cross)" if f.compiled else ""))
    return table


def _code_line(res: FlashResult) -> str:
    """Where the compiled code went: ``code: romfs`` or ``code: /lib (heap)``, and why."""
    if res.code == "romfs":
        state = "already there" if res.romfs_unchanged else "written"
        return (
            f"[green]✓[/] code: romfs ({res.romfs_bytes} bytes in ROMFS partition 0, {state}; "
            "the bytecode runs in place, not in the heap)"
        )
    why = res.code_why or "this board's MicroPython has no ROMFS partition (no vfs.rom_ioctl)"
    return f"[cyan]•[/] code: /lib (heap): the bytecode is loaded into the heap; {why}"


def _mqtt_url(explicit: str | None) -> str:
    if explicit:
        return explicit

    return Stack(settings()).mqtt_url("monitor")


def flash(
    config: Annotated[
        Path,
        typer.Option("--config", "-c", help="Node config written by `agri node add` (→ /node.json)"),
    ],
    port: Annotated[
        str | None, typer.Option("--port", "-p", help="Serial port of the board, e.g. /dev/ttyUSB0")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan (files, sizes, hashes, targets); touch nothing")
    ] = False,
    reset: Annotated[
        ResetChoice, typer.Option(help="After verifying: hard = machine.reset(), soft = Ctrl-D, none")
    ] = ResetChoice.hard,
    wait_first_message: Annotated[
        bool, typer.Option("--wait-first-message", help="After the reset, wait for the node's first message")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the first message", min=1)] = 120.0,
    mqtt_url: Annotated[
        str | None,
        typer.Option(help="Broker URL for --wait-first-message (default: AGRI_MQTT_URL or the local stack)"),
    ] = None,
    firmware: Annotated[
        Path | None, typer.Option(help="Firmware source directory (default: firmware/ of this installation)")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Copy every file, even those the device already has")
    ] = False,
    connect_timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the board's REPL", min=1)
    ] = 10.0,
    boot_output: Annotated[
        float, typer.Option(help="Seconds to show the board's output after the reset (0: none)", min=0)
    ] = 2.0,
    as_json: Annotated[bool, typer.Option("--json", help="With --dry-run: print the plan as JSON")] = False,
    romfs: Annotated[
        bool,
        typer.Option(
            "--romfs/--no-romfs",
            help="Compiled code into the board's ROMFS partition if it has one (runs in place, "
            "not in the heap); --no-romfs keeps it in /lib",
        ),
    ] = True,
) -> None:
    """Build the firmware (mpy-cross), copy it and the node config to the board, verify, reset."""

    t0 = time.monotonic()
    try:
        node = load_node_config(config)
        build = build_firmware(firmware or default_firmware_dir())
        plan = make_plan(build, node, str(config))
    except FlashError as exc:
        raise _fail(exc) from None

    if dry_run:
        if as_json:
            print(
                json.dumps(
                    {
                        "farm": node.farm,
                        "node": node.node,
                        "build": build.key,
                        "compiler": build.compiler,
                        "files": [
                            {"target": f.target, "size": f.size, "sha256": f.sha256, "source": f.source}
                            for f in plan.files
                        ],
                        "total_bytes": plan.total_bytes,
                    }
                )
            )
            return
        console.print(_plan_table(plan))
        console.print(
            f"{len(plan.files)} files, {plan.total_bytes} bytes; node {node.farm}/{node.node} → broker "
            f"{node.broker_host}:{node.broker_port}; build {build.key} "
            f"({'cached' if build.cached else 'compiled'}; {build.compiler})",
            highlight=False,
        )
        target = port or "the board given with --port"
        console.print(
            f"dry run: nothing was sent. A real run connects to {target}, removes stale files under "
            f"{', '.join(plan.owned_dirs)}, copies changed files, verifies every sha256 on the device, "
            f"then does a {reset.value} reset.",
            highlight=False,
        )
        return

    if port is None:
        err_console.print("[bold red]error:[/] --port is required (or use --dry-run)")
        raise typer.Exit(2)

    waiter = None
    if wait_first_message:

        def subscribe() -> None:
            nonlocal waiter

            waiter = FirstMessageWaiter(_mqtt_url(mqtt_url), node.farm, node.node)
            console.print(f"[cyan]•[/] subscribed to {waiter.topic}", highlight=False)

    opts = FlashOptions(
        port=port,
        reset=reset.value,
        force=force,
        connect_timeout=connect_timeout,
        settle_s=boot_output,
        romfs=romfs,
    )
    console.print(
        f"[cyan]•[/] node {node.farm}/{node.node}: {len(plan.files)} files, {plan.total_bytes} bytes "
        f"(build {build.key}, {'cached' if build.cached else 'compiled'})",
        highlight=False,
    )
    try:
        res = run_flash(plan, opts, RichReporter(), before_reset=subscribe if wait_first_message else None)
    except FlashError as exc:
        if waiter is not None:
            waiter.close()
        raise _fail(exc) from None
    console.print(
        f"[green]✓[/] copied {len(res.copied)} files ({res.copied_bytes} bytes), {res.unchanged} unchanged"
        + (f", removed {len(res.removed)} stale" if res.removed else ""),
        highlight=False,
    )
    console.print(
        f"[green]✓[/] verified {res.verified} files on the device (sha256); "
        f"{res.free_bytes_after} bytes free",
        highlight=False,
    )
    console.print(_code_line(res), highlight=False)
    if reset is not ResetChoice.none:
        console.print(f"[green]✓[/] {reset.value} reset: the node is starting", highlight=False)
    if res.boot_output.strip():
        text = res.boot_output.decode(errors="replace").replace("\r", "").strip()
        console.print("[dim]device output after reset:[/]")
        console.print(text, markup=False, highlight=False, style="dim")
    if waiter is not None:
        try:
            first = waiter.wait(timeout)
        except FlashError as exc:
            raise _fail(exc) from None
        finally:
            waiter.close()
        if first.decoded is not None:
            m = first.decoded
            console.print(
                f"[green]✓[/] first message from {node.farm}/{node.node} after {first.waited_s:.1f} s: "
                f"seq {m.seq}, boot {m.boot}, {len(m.readings)} readings"
                + (f", {len(m.rejected)} rejected" if m.rejected else ""),
                highlight=False,
            )
        else:
            console.print(
                f"[yellow]![/] a message arrived after {first.waited_s:.1f} s but does not decode: "
                f"{first.error}",
                highlight=False,
            )
    console.print(
        f"done: node {node.farm}/{node.node} flashed on {port} in {time.monotonic() - t0:.1f} s",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    app.command()(flash)
