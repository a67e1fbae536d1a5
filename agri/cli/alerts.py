"""`agri alerts` (the alert service; ack | resolve | list) and `agri commissioner add | list | assign`."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import psycopg
import typer

from agri.cli.common import console, fail, settings
from agri.stack.manager import Stack
from alerts import lifecycle
from alerts.config import RuleBook
from alerts.dispatcher import Dispatcher, DispatchOptions
from alerts.feed import Partition
from alerts.service import AlertOptions, AlertService
from kernel import links
from kernel.log import configure
from kernel.rules import RulesError
from kernel.settings import Settings
from store import commissioners as comm

alerts_app = typer.Typer(help="The central alert service and its alerts.", invoke_without_command=True)
comm_app = typer.Typer(
    help="Tech commissioners (科技特派员): channels and farm assignments.", no_args_is_help=True
)


def _db(s: Settings) -> str:
    return s.database_url or Stack(s).database_url()


def link_key(s: Settings) -> bytes:
    return links.derive_key(s.secret_key.get_secret_value() if s.secret_key else None)


@alerts_app.callback()
def alerts(
    ctx: typer.Context,
    rules: Annotated[
        Path | None, typer.Option(help="Deployment rules file (TOML)", envvar="AGRI_ALERT_RULES")
    ] = None,
    farm_rules: Annotated[
        Path | None,
        typer.Option(help="Directory of <farm-id>.toml overrides", envvar="AGRI_ALERT_FARM_RULES"),
    ] = None,
    partition: Annotated[
        str, typer.Option(help="This worker's share i/N (farms by hash)", envvar="AGRI_ALERT_PARTITION")
    ] = "0/1",
    escalate_after: Annotated[
        float, typer.Option(help="Minutes unacknowledged before escalating", min=0.01)
    ] = 15,
    public_url: Annotated[str | None, typer.Option(help="Dashboard base URL used in messages")] = None,
    no_dispatch: Annotated[bool, typer.Option(help="Do not send the outbox from this process")] = False,
    check: Annotated[bool, typer.Option("--check", help="Validate the rule files, then exit")] = False,
) -> None:
    """Run the alert service (rules -> alerts -> outbox -> webhooks) unless a subcommand is given."""
    if ctx.invoked_subcommand is not None:
        return
    s = settings()
    configure(s.log_level, s.log_format)
    try:
        book = RuleBook.load(rules, farm_rules)
        i, _, n = partition.partition("/")
        part = Partition(int(i), int(n))
    except RulesError as exc:
        fail(str(exc), 2)
    except ValueError as exc:
        fail(f"--partition: {exc}", 2)
    if check:
        console.print("rules ok")
        return
    opts = AlertOptions(
        database_url=_db(s),
        rules=book,
        partition=part,
        public_url=public_url or s.dashboard_url,
        ack_url=s.api_url,
        link_key=link_key(s),
        escalate_after_s=escalate_after * 60,
        dispatch=not no_dispatch,
        mqtt_url=s.mqtt_url,  # `agri up` sets it (monitor account); without it no gateway rules
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    AlertService(opts).serve(stop)


@alerts_app.command("dispatch")
def dispatch(
    lease: Annotated[
        float, typer.Option(help="Seconds a claimed delivery is held before another try", min=1)
    ] = 30,
    min_backoff: Annotated[float, typer.Option(help="First retry delay, seconds", min=0.01)] = 1.0,
    max_backoff: Annotated[float, typer.Option(help="Retry delay cap, seconds", min=0.01)] = 300.0,
    public_url: Annotated[str | None, typer.Option(help="Dashboard base URL used in messages")] = None,
) -> None:
    """Run only the outbox dispatcher (more dispatchers may run: rows are claimed, not shared)."""
    s = settings()
    configure(s.log_level, s.log_format)
    if max_backoff < min_backoff:
        fail("--max-backoff must be >= --min-backoff", 2)
    opts = DispatchOptions(
        _db(s), link_key(s), public_url or s.dashboard_url, ack_url=s.api_url,
        timeout_s=min(10.0, lease / 2), lease_s=lease, min_backoff_s=min_backoff, max_backoff_s=max_backoff,
    )  # fmt: skip
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    d = Dispatcher(opts)
    try:
        d.serve(stop)
    finally:
        d.close()


@alerts_app.command("ack")
def ack(alert_id: int, by: Annotated[str, typer.Option("--by", help="Who acknowledges")]) -> None:
    """Acknowledge an alert (stops its escalation)."""
    with psycopg.connect(_db(settings()), autocommit=True) as conn:
        try:
            changed = lifecycle.acknowledge(conn, alert_id, by, time.time())
        except lifecycle.AlertNotFound as exc:
            fail(str(exc))
    console.print(f"alert {alert_id}: " + ("acknowledged" if changed else "was not open (unchanged)"))


@alerts_app.command("resolve")
def resolve(alert_id: int, by: Annotated[str, typer.Option("--by", help="Who resolves")]) -> None:
    """Resolve an alert by hand (one resolve message to whoever was told)."""
    s = settings()
    with psycopg.connect(_db(s), autocommit=True) as conn:
        try:
            changed = lifecycle.resolve(conn, alert_id, by, time.time(), s.dashboard_url)
        except lifecycle.AlertNotFound as exc:
            fail(str(exc))
    console.print(f"alert {alert_id}: " + ("resolved" if changed else "already resolved (unchanged)"))


@alerts_app.command("list")
def list_(
    all_: Annotated[bool, typer.Option("--all", help="Resolved ones too")] = False,
    farm: Annotated[str | None, typer.Option(help="Only this farm")] = None,
) -> None:
    """Alerts, newest first."""
    with psycopg.connect(_db(settings()), autocommit=True) as conn:
        rows: list[Any] = conn.execute(
            "SELECT id, status, severity, farm_id, subject, rule, value, started_at, acked_by FROM alerts"
            " WHERE (%s OR ended_at IS NULL) AND (%s::text IS NULL OR farm_id = %s)"
            " ORDER BY started_at DESC LIMIT 200",
            (all_, farm, farm),
        ).fetchall()
    for r in rows:
        v = "" if r[6] is None else f"{r[6]:.2f}"
        console.print(
            f"{r[0]:>6} {r[1]:<12} {r[2]:<8} {r[3]} {r[4]} {r[5]} {v} {r[7]:%Y-%m-%d %H:%M} {r[8] or ''}"
        )


@comm_app.command("add")
def comm_add(
    name: str,
    channel: Annotated[str, typer.Option(help="generic | wecom | dingtalk | feishu")],
    url: Annotated[str, typer.Option(help="Webhook / robot URL")],
    secret: Annotated[str | None, typer.Option(help="whsec_... (generic) or robot signing secret")] = None,
    language: Annotated[str, typer.Option(help="zh | en")] = "zh",
    phone: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Add (or update) a commissioner. The secret is stored, never printed back."""
    with psycopg.connect(_db(settings()), autocommit=True) as conn:
        try:
            cid = comm.add(conn, name, channel, url, secret, language, phone)
        except comm.CommissionerError as exc:
            fail(str(exc), 2)
    console.print(f"commissioner {name} (id {cid}) saved")


@comm_app.command("assign")
def comm_assign(
    name: str,
    farms: Annotated[list[str], typer.Argument(help="Farm ids")],
    min_severity: Annotated[str, typer.Option(help="info | warning | critical")] = "warning",
    order: Annotated[int, typer.Option(help="Escalation order: 0 told at once, 1 after the delay, ...")] = 0,
) -> None:
    """Assign a commissioner to farms (all or none)."""
    with psycopg.connect(_db(settings()), autocommit=True) as conn:
        try:
            comm.assign(conn, name, farms, min_severity, order)
        except comm.CommissionerError as exc:
            fail(str(exc), 2)
    console.print(f"{name}: assigned to {', '.join(farms)} (order {order}, from {min_severity})")


@comm_app.command("list")
def comm_list() -> None:
    """Commissioners with their channel and farms (secrets are never shown)."""
    with psycopg.connect(_db(settings()), autocommit=True) as conn:
        for c in comm.list_commissioners(conn):
            sec = "secret set" if c.has_secret else "no secret"
            farms = " ".join(map(str, c.farms))
            console.print(f"{c.id:>4} {c.name} {c.channel} {c.url} {sec} {c.language} farms: {farms}")


def register(app: typer.Typer) -> None:
    app.add_typer(alerts_app, name="alerts")
    app.add_typer(comm_app, name="commissioner")
