"""`agri gateway`: the farm gateway (farm broker -> durable spool -> batches to the central broker)."""

from __future__ import annotations

import signal
import threading
from typing import TYPE_CHECKING, Annotated

import typer

from agri.cli.common import console, fail, settings
from agri.stack.manager import Stack
from agri.stack.mqtt_auth import new_password
from gateway.config import GatewayConfigError, load_gateway_settings
from gateway.rules import RulesError, load_rules
from gateway.service import GatewayService
from gateway.spool import SpoolError
from kernel.log import configure
from kernel.protocol import check_id
from kernel.settings import MqttUrl

if TYPE_CHECKING:
    from kernel.settings import Settings


def gateway(
    check: Annotated[
        bool, typer.Option("--check", help="Validate the AGRI_GATEWAY_* settings and rules file, then exit")
    ] = False,
    add_account: Annotated[
        str | None,
        typer.Option(
            "--add-account",
            metavar="FARM/GATEWAY",
            help="Create (or rotate) a gateway's broker account in $AGRI_HOME/mqtt, print its password, exit",
        ),
    ] = None,
) -> None:
    """Run the farm gateway: validate node messages, spool them to disk, forward batches upstream.

    Configured by AGRI_GATEWAY_* variables (see README, "Farm gateway").
    """

    s = settings()
    if add_account is not None:
        _add_account(s, add_account)
        return
    try:
        cfg = load_gateway_settings()
        rules = load_rules(cfg.rules_file) if cfg.rules_file is not None else None
    except (GatewayConfigError, RulesError) as exc:
        fail(str(exc), 2)
    if check:
        console.print(
            f"gateway {cfg.farm}/{cfg.id}: local {MqttUrl(cfg.local_url).public()}, "
            f"upstream {MqttUrl(cfg.upstream_url).public()}, spool {cfg.spool_path} "
            f"(max {cfg.spool_max_bytes} bytes, synchronous={cfg.spool_sync}), "
            f"rules: {len(rules.rules) if rules else 0}, webhook: {'yes' if cfg.webhook_url else 'no'}",
            highlight=False,
            soft_wrap=True,
        )
        return
    configure(s.log_level, s.log_format)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        svc = GatewayService(cfg, clock_skew_s=s.clock_skew_s, retention_days=s.retention_days, rules=rules)
    except SpoolError as exc:
        fail(str(exc))
    raise typer.Exit(svc.run(stop))  # 1 when a gateway loop died (logged: gateway_failed)


def _add_account(s: Settings, spec: str) -> None:

    farm, _, gw = spec.partition("/")
    try:
        check_id("farm", farm)
        check_id("gateway", gw)
    except ValueError as exc:
        fail(f"--add-account FARM/GATEWAY: {exc}", 2)
    st = Stack(s)
    auth = st.mqtt_auth()
    user, password = f"gw-{farm}-{gw}", new_password()
    acc = auth.set(user, password, "gateway", farm, gw)
    auth.save()
    reloaded = s.embedded_mqtt and st.broker().reload()
    console.print(f"gateway account [bold]{user}[/] password [bold]{password}[/]", highlight=False)
    console.print("ACL: " + "; ".join(acc.acl_lines()), highlight=False, soft_wrap=True)
    console.print(
        f"written to {auth.passwd} and {auth.acl}"
        + (" (broker reloaded)" if reloaded else "; copy both to the broker(s) and reload them"),
        highlight=False,
        soft_wrap=True,
    )


def register(app: typer.Typer) -> None:
    app.command("gateway")(gateway)
