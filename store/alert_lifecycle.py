"""The alert lifecycle's shared steps: read an alert, record a transition, queue outbox rows,
acknowledge, resolve by hand. Used by the alert service (``alerts.lifecycle``, which opens, closes
and escalates alerts) and by the HTTP API (acknowledge and resolve), so both change an alert the
same way: every transition recorded in ``alert_events``, outbox rows in the same transaction.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


class AlertNotFound(LookupError):
    pass


def _ts(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def alert_link(dashboard_url: str, alert_id: int) -> str:
    """The dashboard's deep link to one alert (its alerts page opens on it)."""
    return f"{dashboard_url.rstrip('/')}/alerts?alert={alert_id}"


def alert_view(row: dict[str, Any], dashboard_url: str) -> dict[str, Any]:
    """What a message says about an alert (stored as the delivery's payload)."""
    d = row.get("details") or {}
    farm = row["farm_id"]
    node = d.get("node")
    link = alert_link(dashboard_url, int(row["id"]))
    return {
        "alert_id": row["id"],
        "farm": farm,
        "node": node,
        "metric": d.get("metric"),
        "rule": row["rule"],
        "severity": row["severity"],
        "value": row["value"],
        "threshold": d.get("threshold"),
        "op": d.get("op"),
        "since": row["started_at"].timestamp(),
        "ended": row["ended_at"].timestamp() if row.get("ended_at") else None,
        "message": row["message"],
        "status": row["status"],
        "dashboard": link,
    }


def get_alert(conn: psycopg.Connection[Any], alert_id: int) -> dict[str, Any]:
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        row = cur.execute("SELECT * FROM alerts WHERE id = %s", (alert_id,)).fetchone()
    if row is None:
        raise AlertNotFound(f"no alert {alert_id}")
    return row


def record(
    conn: psycopg.Connection[Any], alert_id: int, kind: str, by: str, now: float, **details: Any
) -> None:
    conn.execute(
        "INSERT INTO alert_events (alert_id, at, kind, by_whom, details) VALUES (%s, %s, %s, %s, %s)",
        (alert_id, _ts(now), kind, by, Jsonb(details)),
    )


def enqueue(
    conn: psycopg.Connection[Any], row: dict[str, Any], event: str, dashboard_url: str,
    *, order: int | None = None, told_only: bool = False,
) -> int:  # fmt: skip
    """Outbox rows for ``event`` of alert ``row``: to the farm's commissioners of escalation
    ``order`` (at or above their minimum severity), or to everyone already told (``told_only``)."""
    view = Jsonb(alert_view(row, dashboard_url))
    if told_only:
        cur = conn.execute(
            "INSERT INTO webhook_deliveries (alert_id, commissioner_id, event, payload, farm_id)"
            " SELECT DISTINCT %s, d.commissioner_id, %s, %s, %s FROM webhook_deliveries d"
            " JOIN commissioners c ON c.id = d.commissioner_id"
            " WHERE d.alert_id = %s AND d.event IN ('alert.opened', 'alert.escalated') AND c.active"
            " ON CONFLICT (alert_id, commissioner_id, event) DO NOTHING",
            (row["id"], event, view, row["farm_id"], row["id"]),
        )
        return max(cur.rowcount, 0)
    cur = conn.execute(
        "INSERT INTO webhook_deliveries (alert_id, commissioner_id, event, payload, farm_id)"
        " SELECT %s, c.id, %s, %s, fc.farm_id FROM farm_commissioners fc"
        " JOIN commissioners c ON c.id = fc.commissioner_id"
        " WHERE fc.farm_id = %s AND c.active AND fc.escalation_order = %s"
        " AND (CASE fc.min_severity WHEN 'info' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END) <= %s"
        " ON CONFLICT (alert_id, commissioner_id, event) DO NOTHING",
        (row["id"], event, view, row["farm_id"], order or 0, SEVERITY_RANK[row["severity"]]),
    )
    return max(cur.rowcount, 0)


def acknowledge(conn: psycopg.Connection[Any], alert_id: int, by: str, now: float) -> bool:
    """Acknowledge an open alert; False if it was already acknowledged or resolved."""
    with conn.transaction():
        get_alert(conn, alert_id)
        cur = conn.execute(
            "UPDATE alerts SET status = 'acknowledged', acked_at = %s, acked_by = %s, escalate_at = NULL"
            " WHERE id = %s AND status = 'open'",
            (_ts(now), by, alert_id),
        )
        if cur.rowcount:
            record(conn, alert_id, "acknowledged", by, now)
        return cur.rowcount > 0


def resolve(conn: psycopg.Connection[Any], alert_id: int, by: str, now: float, dashboard_url: str) -> bool:
    """Resolve by hand; the commissioners who were told get one resolve message."""
    with conn.transaction():
        get_alert(conn, alert_id)
        cur = conn.execute(
            "UPDATE alerts SET status = 'resolved', ended_at = %s, resolved_by = %s, escalate_at = NULL"
            " WHERE id = %s AND ended_at IS NULL",
            (_ts(now), by, alert_id),
        )
        if not cur.rowcount:
            return False
        record(conn, alert_id, "resolved", by, now)
        enqueue(conn, get_alert(conn, alert_id), "alert.resolved", dashboard_url, told_only=True)
        return True
