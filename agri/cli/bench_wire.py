"""`agri bench wire`: bytes on the gateway's uplink per node message, live farm vs backlog."""

from __future__ import annotations

import dataclasses
import json
from typing import Annotated

import typer

from agri.bench.wire import run
from agri.cli.common import console
from kernel.catalog import FARM_KINDS


def bench_wire(
    nodes: Annotated[int, typer.Option(min=1, max=100_000, help="Nodes at the farm")] = 500,
    minutes: Annotated[int, typer.Option(min=1, max=1440, help="Minutes simulated (one message each)")] = 30,
    linger: Annotated[
        float, typer.Option(min=0, max=60, help="Gateway linger (AGRI_GATEWAY_LINGER_S)")
    ] = 0.5,
    kind: Annotated[str, typer.Option(help="Farm kind (sensor profile)")] = "orchard",
    seed: Annotated[int, typer.Option(help="Random seed of the simulated values")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Compressed bytes per node message upstream, with realistic values and the batches a farm makes."""
    if kind not in FARM_KINDS:
        raise typer.BadParameter(f"must be one of {', '.join(FARM_KINDS)}", param_hint="--kind")
    results = run(nodes=nodes, minutes=minutes, linger_s=linger, kind=kind, seed=seed)
    if as_json:
        print(json.dumps([dataclasses.asdict(r) for r in results]))
        return
    console.print(
        f"{kind}: {results[0].messages} node messages ({results[0].payload_bytes_per_message:.0f} B each)"
    )
    for r in results:
        ratio = r.mqtt_bytes_per_message / r.payload_bytes_per_message
        console.print(
            f"  {r.scenario:<55} {r.messages_per_batch:>6.1f} msg/batch  "
            f"{r.envelope_bytes_per_message:>5.1f} B envelope  {r.mqtt_bytes_per_message:>5.1f} B with MQTT "
            f"per message ({ratio:.2f} of its {r.payload_bytes_per_message:.0f} B payload)",
            highlight=False,
            soft_wrap=True,
        )


def register(bench_app: typer.Typer) -> None:
    bench_app.command("wire")(bench_wire)
