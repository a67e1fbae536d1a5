"""What `agri demo` runs after the stack is up: simulated farms, then wait for Ctrl-C.

Four farms of the Wanzhou district plan (智慧果园, 智慧猪场, 智慧茶园, 渔场), two nodes each, are
provisioned exactly as a technician would (`agri node add`: registry rows, broker account, node
config) and each node runs the real MicroPython firmware under the unix port (`agri node emulate`)
with simulated sensors, publishing to the embedded broker; `agri ingest` stores what they send.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from rich.console import Console

from agri.node import config as nodecfg
from agri.node.emulate import Emulator
from agri.node.provision import Request, provision
from store import registry

if TYPE_CHECKING:
    from agri.node.emulate import Emulator
    from agri.stack.manager import Stack


@dataclass(frozen=True)
class DemoFarm:
    id: str
    name: str
    kind: str
    lat: float
    lon: float
    elevation_m: float


DEMO_FARMS = (
    DemoFarm("longju-citrus", "龙驹镇柑橘园", "orchard", 30.63, 108.63, 420.0),
    DemoFarm("ganning-pigs", "甘宁镇生态猪场", "pig_farm", 30.72, 108.27, 350.0),
    DemoFarm("taibai-tea", "太白茶园", "tea_garden", 30.86, 108.52, 780.0),
    DemoFarm("xiaozhou-pond", "小周镇生态渔场", "pond", 30.86, 108.49, 180.0),
)
NODES_PER_FARM = 2
DEMO_INTERVAL_S = 10  # faster than a field node, so the dashboard fills within minutes


def provision_demo(stack: Stack, console: Console) -> list[Any]:
    """Provision the demo farms and nodes (idempotent); return their node configs."""

    configs = []
    for farm in DEMO_FARMS:
        for i in range(1, NODES_PER_FARM + 1):
            res = provision(
                stack,
                Request(
                    farm=farm.id,
                    node=f"n-{i:02d}",
                    farm_kind=farm.kind,
                    farm_name=farm.name,
                    node_name=f"{farm.name} {i}号节点",
                    interval=DEMO_INTERVAL_S,
                ),
            )
            configs.append(nodecfg.load(res.config_path))
        with psycopg.connect(stack.database_url(), autocommit=True) as conn:
            registry.upsert_farm(
                conn, farm.id, farm.name, farm.kind, lat=farm.lat, lon=farm.lon, elevation_m=farm.elevation_m
            )
    console.print(f"[green]✓[/] provisioned {len(DEMO_FARMS)} farms, {len(configs)} nodes", highlight=False)
    return configs


def start_nodes(stack: Stack, configs: list[Any]) -> list[tuple[Emulator, Any]]:

    running = []
    for cfg in configs:
        root = stack.home / "demo" / cfg.farm / cfg.node
        emu = Emulator(config=cfg, root=Path(root))
        log = open(stack.home / "log" / f"node-{cfg.farm}-{cfg.node}.log", "a")  # noqa: SIM115
        proc = emu.start(stdout=log.fileno())
        log.close()
        running.append((emu, proc))
    return running


def stored_readings(stack: Stack) -> int | None:
    try:
        with psycopg.connect(stack.database_url(), connect_timeout=3) as conn:
            row = conn.execute("SELECT count(*) FROM readings").fetchone()
            return int(row[0]) if row else 0
    except psycopg.Error:
        return None


def run(stack: Stack, stop: threading.Event, console: Console) -> None:
    configs = provision_demo(stack, console)
    nodes = start_nodes(stack, configs)
    console.print(
        f"[green]✓[/] {len(nodes)} emulated MicroPython nodes started "
        f"(logs: {stack.home / 'log'}/node-*.log)",
        highlight=False,
    )
    status = stack.status()
    for name, comp in status.items():
        console.print(f"  {name:<10} {comp['state']:<8} {comp.get('address') or ''}", highlight=False)
    console.print("The platform is running with simulated farms. Press Ctrl-C to stop.")
    try:
        last = time.monotonic()
        while not stop.wait(1.0):
            for emu, proc in nodes:
                if proc.poll() is not None:
                    console.print(f"[red]node {emu.root.name} exited ({proc.returncode})[/]", highlight=False)
                    nodes.remove((emu, proc))
                    break
            if time.monotonic() - last >= 30:
                last = time.monotonic()
                n = stored_readings(stack)
                console.print(f"  readings stored: {n if n is not None else '?'}", highlight=False)
    finally:
        for _emu, proc in nodes:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(2)
        for _emu, proc in nodes:
            try:
                proc.wait(10)
            except Exception:
                proc.kill()
