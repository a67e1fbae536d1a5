"""`agri bench gateway`: messages/s into the gateway's durable spool, forwarded, and flowing through."""

from __future__ import annotations

import dataclasses
import json
from typing import Annotated, Literal

import typer

from agri.bench.gateway import run
from agri.cli.common import console


def bench_gateway(
    messages: Annotated[int, typer.Option(min=100, help="Messages per phase")] = 20_000,
    nodes: Annotated[int, typer.Option(min=1, max=10_000, help="Simulated nodes")] = 200,
    readings: Annotated[int, typer.Option(min=1, max=5, help="Readings per message")] = 5,
    sync: Annotated[str, typer.Option(help="Spool synchronous mode: full | normal")] = "full",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
) -> None:
    """Spool throughput of a real `agri gateway` process between two private Mosquitto brokers."""

    if sync not in ("full", "normal"):
        raise typer.BadParameter("must be 'full' or 'normal'", param_hint="--sync")
    mode: Literal["full", "normal"] = "full" if sync == "full" else "normal"
    r = run(messages=messages, nodes=nodes, readings=readings, sync=mode)
    if as_json:
        print(json.dumps(dataclasses.asdict(r)))
        return
    console.print(
        f"gateway, spool synchronous={r.sync}, {r.messages} messages x {r.readings_per_message} readings "
        f"({r.payload_bytes_per_message:.0f} B each)\n"
        f"  into the spool     {r.spool_in_msgs_per_s:>7} msg/s  (queued backlog, acked after each commit)\n"
        f"  forward a backlog  {r.forward_backlog_msgs_per_s:>7} msg/s  (PUBACKed upstream, then deleted)\n"
        f"  flow through       {r.flow_through_msgs_per_s:>7} msg/s  (node -> central; load generator "
        f"{r.publisher_flow_msgs_per_s} msg/s)\n"
        f"  upstream: {r.batches_upstream} batches, {r.bytes_per_message_upstream:.0f} B per message (zlib)",
        highlight=False,
        soft_wrap=True,
    )


def register(bench_app: typer.Typer) -> None:
    bench_app.command("gateway")(bench_gateway)
