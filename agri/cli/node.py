"""`agri node add` (provision a node) and `agri node emulate` (run the firmware without a board)."""

from __future__ import annotations

import enum
import os
from pathlib import Path
from typing import Annotated, Any

import psycopg
import typer
from rich.markup import escape

from agri.cli.common import console, err_console, fail, settings
from agri.flash.build import default_firmware_dir
from agri.flash.errors import FlashError
from agri.node import config as nodecfg
from agri.node import ota
from agri.node.emulate import Emulator, parse_fault, run_foreground
from agri.node.provision import ProvisionError, Request, provision
from agri.node.runtime import WORD_BITS, RuntimeMissing, parse_heap
from agri.stack.manager import Stack
from api.queries import nodeimport
from api.queries.errors import QueryError
from kernel.mqtt import make_client
from store import credentials, registry

node_app = typer.Typer(help="Sensor nodes: provision, emulate", no_args_is_help=True)


class FarmKind(enum.StrEnum):
    orchard = "orchard"
    pig_farm = "pig_farm"
    tea_garden = "tea_garden"
    pond = "pond"


class CodeMode(enum.StrEnum):
    rom = "rom"
    ram = "ram"


@node_app.command("add")
def add(
    farm: Annotated[str, typer.Option("--farm", help="Farm id ([a-z0-9-]{1,32})")],
    node: Annotated[str, typer.Option("--node", help="Node id ([a-z0-9-]{1,32}, not 'gw')")],
    farm_kind: Annotated[
        FarmKind | None, typer.Option("--farm-kind", help="Kind of a farm to create (or check)")
    ] = None,
    farm_name: Annotated[str | None, typer.Option("--farm-name", help="Name of a farm to create")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Node's display name")] = None,
    profile: Annotated[
        FarmKind | None, typer.Option("--profile", help="Sensor profile (default: the farm's kind)")
    ] = None,
    interval: Annotated[
        int | None, typer.Option("--interval", help="Seconds between samples (default per profile)")
    ] = None,
    broker_host: Annotated[
        str | None, typer.Option("--broker-host", help="Broker address as the node reaches it")
    ] = None,
    broker_port: Annotated[int | None, typer.Option("--broker-port", help="Broker port")] = None,
    wifi_ssid: Annotated[str | None, typer.Option("--wifi-ssid", help="Wi-Fi network of the node")] = None,
    wifi_password: Annotated[str, typer.Option("--wifi-password", help="Wi-Fi password")] = "",
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Config file to write (default $AGRI_HOME/nodes/FARM/NODE.json)"),
    ] = None,
    rotate: Annotated[bool, typer.Option("--rotate", help="Give the node a new broker password")] = False,
) -> None:
    """Register a node, create its broker account (own topics only), write its config file."""

    req = Request(
        farm=farm,
        node=node,
        farm_kind=farm_kind.value if farm_kind else None,
        farm_name=farm_name,
        node_name=name,
        profile=profile.value if profile else None,
        interval=interval,
        broker_host=broker_host,
        broker_port=broker_port,
        wifi_ssid=wifi_ssid,
        wifi_password=wifi_password,
        out=out,
        rotate=rotate,
    )
    try:
        req.check()
        res = provision(Stack(settings()), req)
    except ValueError as exc:
        fail(str(exc), 2)
    except ProvisionError as exc:
        fail(str(exc))
    what = "created farm and registered" if res.farm_created else "registered"
    console.print(
        f"[green]✓[/] {what} node {res.farm}/{res.node} ({', '.join(res.metrics)})", highlight=False
    )
    if res.broker_reloaded is not None:
        state = "active now (broker reloaded)" if res.broker_reloaded else "saved"
        rot = ", password rotated" if res.password_rotated else ""
        console.print(f"[green]✓[/] MQTT account {res.username}: {state}{rot}", highlight=False)
    else:
        console.print("[yellow]![/] external broker: configure it yourself:", highlight=False)
        for line in res.external_setup:
            console.print(f"    {escape(line)}", highlight=False)
    console.print(f"[green]✓[/] config written: {res.config_path} (mode 0600)", highlight=False)
    for w in res.warnings:
        err_console.print(f"[yellow]warning:[/] {escape(w)}", highlight=False)
    console.print(
        f"next: agri flash --config {res.config_path} --port /dev/ttyUSB0   "
        f"or   agri node emulate --config {res.config_path}",
        highlight=False,
    )


@node_app.command("emulate")
def emulate(
    config: Annotated[Path, typer.Option("--config", help="Node config file (as written by agri node add)")],
    root: Annotated[
        Path | None,
        typer.Option("--root", help="Node filesystem root: node.json, spool, state (default next to config)"),
    ] = None,
    heap: Annotated[str, typer.Option("--heap", help="MicroPython heap size")] = "64K",
    fast: Annotated[bool, typer.Option("--fast", help="Simulated fast clock (no real waiting)")] = False,
    cycles: Annotated[
        int, typer.Option("--cycles", min=0, help="Stop after N samples (0: run until stopped)")
    ] = 0,
    start: Annotated[
        int | None,
        typer.Option("--start", help="Fast clock start: Unix time, or negative seconds before now"),
    ] = None,
    fault: Annotated[
        list[str] | None,
        typer.Option("--fault", help="Inject METRIC:KIND[:FROM[:TO[:SIZE]]], KIND stuck|spike|drift|dead"),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Simulation random seed")] = 1,
    heap_every: Annotated[
        int, typer.Option("--heap-every", min=0, help="Log gc.mem_free() every N cycles")
    ] = 0,
    code: Annotated[
        CodeMode,
        typer.Option("--code", help="rom: bytecode runs from a mapped ROMFS image; ram: loaded into heap"),
    ] = CodeMode.rom,
    micropython: Annotated[
        Path | None, typer.Option("--micropython", help="MicroPython unix port binary")
    ] = None,
    bits: Annotated[
        int,
        typer.Option(
            "--bits", help="Unix-port build: 64, or 32 (a 32-bit board's pointer size and heap use)"
        ),
    ] = 64,
) -> None:
    """Run the real firmware under the MicroPython unix port as the node CONFIG describes, until stopped."""

    try:
        cfg = nodecfg.load(config)
        parse_heap(heap)
        faults = [parse_fault(f) for f in fault or []]
        if bits not in WORD_BITS:
            raise ValueError(f"--bits: {bits} is not one of {', '.join(map(str, WORD_BITS))}")
    except ValueError as exc:
        fail(str(exc), 2)
    if start is not None and not fast:
        fail("--start needs --fast (it sets the simulated clock)", 2)
    sim: dict[str, Any] = {"seed": seed}
    if fast:
        sim["clock"] = "fast"
        if start is not None:
            sim["start"] = start
    if cycles:
        sim["cycles"] = cycles
    if heap_every:
        sim["heap_every"] = heap_every
    if faults:
        sim["faults"] = faults
    fs_root = root or config.with_name(config.stem + ".fs")
    emu = Emulator(
        cfg,
        fs_root,
        heap=heap,
        sim=sim,
        code=code.value,
        micropython=str(micropython) if micropython else None,
        bits=bits,
    )
    console.print(
        f"[cyan]•[/] node {cfg.farm}/{cfg.node} on the {bits}-bit MicroPython unix port (heap {heap}, "
        f"code in {code.value}), filesystem {fs_root}; Ctrl-C stops it",
        highlight=False,
    )
    try:
        rc = run_foreground(emu, on_line=lambda line: print(line, flush=True))  # one event per line
    except RuntimeMissing as exc:
        fail(str(exc))
    if rc not in (0, -2):
        fail(f"firmware exited with code {rc}", rc if 0 < rc < 128 else 1)


def _sync_accounts(stack: Stack, conn: psycopg.Connection[Any]) -> int | None:
    """Write pending node credentials (made by an import) into the embedded broker's accounts."""
    if not stack.s.embedded_mqtt:
        return None
    todo = credentials.pending(conn)
    if not todo:
        return 0
    auth = stack.mqtt_auth()
    for farm, node, user, pw_hash in todo:
        auth.set_hashed(user, pw_hash, farm, node)
    auth.save()
    stack.broker().reload()
    credentials.mark_applied(conn, [t[2] for t in todo])
    return len(todo)


@node_app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="CSV or Excel (.xlsx) sheet, one row per node")],
    apply: Annotated[bool, typer.Option("--apply", help="Register the nodes (default: dry run)")] = False,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Folder for the node config files [default: $AGRI_HOME/nodes]"),
    ] = None,
    broker_host: Annotated[
        str, typer.Option("--broker-host", help="Broker address as the nodes reach it")
    ] = "127.0.0.1",
    broker_port: Annotated[int | None, typer.Option("--broker-port", help="Broker port")] = None,
) -> None:
    """Check a sheet of nodes (columns: farm, node, kind, name, lat, lon, sensors, interval, firmware);
    with --apply register them all or none and write one config file per node for `agri flash`."""
    try:
        data = file.read_bytes()
    except OSError as exc:
        fail(f"{file}: {exc.strerror}", 2)
    stack = Stack(settings())
    try:
        conn = psycopg.connect(stack.database_url(), autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        fail(f"database not reachable ({str(exc).strip().splitlines()[0]}): start the stack with `agri up`")
    with conn:
        try:
            report = nodeimport.run(conn, file.name, data, apply=apply)
        except nodeimport.ImportRejected as exc:
            report = exc.report
        except QueryError as exc:
            fail(f"{file}: {exc}", 2)
        for e in report.errors:
            col = f", column {e.column}" if e.column else ""
            err_console.print(
                f"{escape(str(file))}, line {e.line}{col}: {escape(e.message)}",
                highlight=False,
                soft_wrap=True,
            )
        if report.errors:
            fail(f"{len(report.errors)} problem(s) in {file}; nothing was registered", 1)
        if not apply:
            console.print(
                f"[green]✓[/] {report.rows} node(s) OK (dry run; --apply registers them)", highlight=False
            )
            return
        synced = _sync_accounts(stack, conn)
    home = out or stack.home / "nodes"
    port = broker_port or stack.s.mqtt_port
    for c in report.credentials or []:
        row = next(r for r in report.nodes if (r.farm, r.node) == (c.farm, c.node))
        interval, sensors = nodecfg.profile(row.kind or _farm_kind(stack, c.farm))
        wanted = set(c.metrics)
        chosen = [x for x in sensors if wanted & set(x.outputs())] or sensors
        cfg = nodecfg.parse(
            {
                "farm": c.farm,
                "node": c.node,
                "broker": {"host": broker_host, "port": port, "user": c.username, "password": c.password},
                "interval": c.interval or interval,
                "sensors": [x.model_dump(exclude_none=True) for x in chosen],
            },
            f"{c.farm}/{c.node}",
        )
        nodecfg.write(cfg, home / c.farm / f"{c.node}.json")
    console.print(
        f"[green]✓[/] registered {report.rows} node(s); configs in {home}/FARM/NODE.json (0600)",
        highlight=False,
    )
    if synced is None:
        err_console.print(
            "[yellow]warning:[/] external broker: add the node accounts from the config files",
            highlight=False,
        )


def _farm_kind(stack: Stack, farm: str) -> str:
    with psycopg.connect(stack.database_url(), connect_timeout=5) as conn:
        row = conn.execute("SELECT kind FROM farms WHERE id = %s", (farm,)).fetchone()
    return str(row[0]) if row else "orchard"


@node_app.command("sync-accounts")
def sync_accounts() -> None:
    """Apply node credentials registered through the HTTP API to the embedded broker."""
    stack = Stack(settings())
    with psycopg.connect(stack.database_url(), autocommit=True, connect_timeout=5) as conn:
        n = _sync_accounts(stack, conn)
    if n is None:
        fail("external broker: create the accounts there (node_credentials holds the $7$ hashes)")
    console.print(f"[green]✓[/] {n} node account(s) applied", highlight=False)


@node_app.command("update")
def update(
    farm: Annotated[str, typer.Option("--farm", help="Farm id")],
    version: Annotated[str, typer.Option("--version", help="Version name of this release (e.g. 0.2.0)")],
    node: Annotated[
        list[str] | None, typer.Option("--node", help="Node id (repeatable; default: every node of the farm)")
    ] = None,
    stages: Annotated[
        str, typer.Option("--stages", help="Stages: counts or cumulative percentages, e.g. 1,25%,100%")
    ] = "100%",
    firmware_dir: Annotated[
        Path | None,
        typer.Option("--firmware-dir", help="Firmware sources (default: this checkout's firmware/)"),
    ] = None,
    max_boots: Annotated[
        int,
        typer.Option("--max-boots", help="Boots a new version gets to connect and publish before rollback"),
    ] = 3,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait for each stage's nodes to report")
    ] = 900,
    mqtt_url: Annotated[
        str | None,
        typer.Option("--mqtt-url", help="Broker URL with a platform account (default: the stack's)"),
    ] = None,
) -> None:
    """Update node firmware over the air, stage by stage; a stage with a node that does not report
    the new version running (rolled back, refused, failed, silent) stops the roll-out."""
    stack = Stack(settings())
    try:
        rel = ota.release(version, firmware_dir or default_firmware_dir())
        master = ota.master_key(stack.home)
    except (ota.UpdateError, FlashError) as exc:
        fail(str(exc), 2)
    with psycopg.connect(stack.database_url(), autocommit=True, connect_timeout=5) as conn:
        nodes = list(node) if node else registry.farm_nodes(conn, farm)
        if not nodes:
            fail(f"farm {farm!r} has no nodes", 2)
        watch = ota.StatusWatch()
        client, kwargs = make_client(mqtt_url or stack.mqtt_url("admin"), f"agri-update-{os.getpid()}")
        client.on_connect = lambda c, *_a: c.subscribe(f"agri/v1/{farm}/+/status", 1)
        client.on_message = lambda _c, _u, m: watch.on_message(m.topic, bytes(m.payload))
        client.connect(**kwargs)
        client.loop_start()
        try:
            console.print(
                f"release {rel.version}: {len(rel.files)} files, {rel.size} B, "
                f"{len(ota.chunks(rel))} chunks per node",
                highlight=False,
            )
            out = ota.roll_out(
                client,
                watch,
                farm,
                nodes,
                rel,
                master,
                stage_spec=stages,
                max_boots=max_boots,
                timeout=timeout,
                record=lambda n, st, v: registry.set_node_firmware(conn, farm, n, st, v),
                say=lambda m: console.print(m, highlight=False),
            )
        except ota.UpdateError as exc:
            fail(str(exc), 2)
        finally:
            client.disconnect()
            client.loop_stop()
    for o in out:
        color = {"ok": "green", "timeout": "yellow", "not started": "yellow"}.get(o.result, "red")
        note = " (asleep? it takes the update at its next wake)" if o.result == "timeout" else ""
        console.print(
            f"[{color}]{o.result}[/] {farm}/{o.node}: {o.air_bytes} B on air, {o.seconds:.0f} s{note}",
            highlight=False,
        )
    raise typer.Exit(0 if all(o.result == "ok" for o in out) else 1)


def register(app: typer.Typer) -> None:
    app.add_typer(node_app, name="node")
