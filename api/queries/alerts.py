"""Alerts: list and filter, detail with its history, acknowledge, resolve by hand.

Acknowledge and resolve go through ``store.alert_lifecycle``, the same steps the alert service
and `agri alerts` use: the transition is recorded in ``alert_events`` and, for a resolve, the
commissioners who were told get one message through the outbox, in the same transaction.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal, Unpack

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from pydantic import BaseModel

from api.queries import cursor as cursors
from api.queries.errors import Conflict, NotFound
from api.queries.models import Page
from store import alert_lifecycle

Conn = psycopg.Connection[Any]
Status = Literal["open", "acknowledged", "resolved"]
Severity = Literal["info", "warning", "critical"]


class Alert(BaseModel):
    id: int
    farm_id: str
    node_id: str | None
    metric: str | None
    rule: str
    subject: str
    severity: Severity
    status: Status
    message: str
    value: float | None
    details: dict[str, Any]
    started_at: datetime
    ended_at: datetime | None
    acked_at: datetime | None
    acked_by: str | None
    resolved_by: str | None
    escalation_level: int
    flaps: int
    parent_id: int | None


class AlertEvent(BaseModel):
    at: datetime
    kind: str
    by_whom: str
    details: dict[str, Any]


class AlertDetail(Alert):
    events: list[AlertEvent]


_SELECT = sql.SQL(
    "SELECT a.id, a.farm_id, n.node_id, s.metric, a.rule, a.subject, a.severity, a.status, a.message,"
    " a.value, a.details, a.started_at, a.ended_at, a.acked_at, a.acked_by, a.resolved_by,"
    " a.escalation_level, a.flaps, a.parent_id FROM alerts a LEFT JOIN nodes n ON n.id = a.node_id"
    " LEFT JOIN series s ON s.id = a.series_id"
)


def list_alerts(
    conn: Conn,
    *,
    status: Status | None = None,
    severity: Severity | None = None,
    rule: str | None = None,
    **recent: Unpack[cursors.Recent],
) -> Page[Alert]:
    """Alerts, newest first."""
    farms = recent.get("farms")
    conds = cursors.where(
        ("a.farm_id = ANY(%s)", None if farms is None else list(farms)),
        ("a.farm_id = %s", recent.get("farm")),
        ("a.status = %s", status),
        ("a.severity = %s", severity),
        ("a.rule = %s", rule),
        ("n.node_id = %s", recent.get("node")),
        ("a.started_at >= %s", recent.get("since")),
        ("a.started_at < %s", recent.get("until")),
    )
    return cursors.newest_first(conn, _SELECT, conds, "a.id", Alert, recent)


def get_alert(conn: Conn, alert_id: int, *, farms: Sequence[str] | None = None) -> AlertDetail:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(sql.SQL("{} WHERE a.id = %s").format(_SELECT), (alert_id,)).fetchone()
        if row is None or (farms is not None and row["farm_id"] not in farms):
            raise NotFound(f"alert {alert_id} not found", field="alert_id")
        events = cur.execute(
            "SELECT at, kind, by_whom, details FROM alert_events WHERE alert_id = %s ORDER BY at, id",
            (alert_id,),
        ).fetchall()
    return AlertDetail(**row, events=[AlertEvent(**e) for e in events])


def acknowledge(conn: Conn, alert_id: int, by: str, *, farms: Sequence[str] | None = None) -> AlertDetail:
    get_alert(conn, alert_id, farms=farms)
    try:
        changed = alert_lifecycle.acknowledge(conn, alert_id, by, time.time())
    except alert_lifecycle.AlertNotFound:
        raise NotFound(f"alert {alert_id} not found", field="alert_id") from None
    if not changed:
        raise Conflict(f"alert {alert_id} is not open (acknowledged or resolved already)", field="alert_id")
    return get_alert(conn, alert_id)


def resolve(
    conn: Conn, alert_id: int, by: str, dashboard_url: str, *, farms: Sequence[str] | None = None
) -> AlertDetail:
    get_alert(conn, alert_id, farms=farms)
    try:
        changed = alert_lifecycle.resolve(conn, alert_id, by, time.time(), dashboard_url)
    except alert_lifecycle.AlertNotFound:
        raise NotFound(f"alert {alert_id} not found", field="alert_id") from None
    if not changed:
        raise Conflict(f"alert {alert_id} is resolved already", field="alert_id")
    return get_alert(conn, alert_id)
