"""Alert lifecycle in the database: open -> acknowledged -> resolved, every transition recorded in
``alert_events`` (who, when), and the outbox rows of each change written in the same transaction.

One open alert per (farm, node, series, rule) (the partial unique index of migration 0001).
A condition that returns within the rule's ``cooldown_s`` of the last resolve *reopens* that
alert (counted in ``flaps``) without a new message: a flapping sensor buzzes nobody twice.
Escalation: commissioners of the farm have an escalation order; order 0 is told when an alert
opens, order k when it is still unacknowledged ``k * escalate_after_s`` after it opened.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from alerts.engine import Event, subject

SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


class AlertNotFound(LookupError):
    pass


def _ts(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def alert_view(row: dict[str, Any], dashboard_url: str) -> dict[str, Any]:
    """What a message says about an alert (stored as the delivery's payload)."""
    d = row.get("details") or {}
    farm = row["farm_id"]
    node = d.get("node")
    link = f"{dashboard_url.rstrip('/')}/?farm={farm}" + (f"&node={node}" if node else "")
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


def _get(conn: psycopg.Connection[Any], alert_id: int) -> dict[str, Any]:
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        row = cur.execute("SELECT * FROM alerts WHERE id = %s", (alert_id,)).fetchone()
    if row is None:
        raise AlertNotFound(f"no alert {alert_id}")
    return row


def _record(
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


def open_alert(
    conn: psycopg.Connection[Any], ev: Event, now: float, dashboard_url: str, escalate_after_s: float,
    *, notify: bool = True,
) -> int | None:  # fmt: skip
    """Open (or reopen, when flapping) the alert of ``ev``; None if one is already open."""
    rule = ev.rule
    details = {"node": ev.node, "metric": ev.metric or None, "threshold": rule.threshold, "op": rule.op,
               "peak": ev.peak, "kind": rule.kind, "source": rule.source}  # fmt: skip
    subj = subject(rule, ev.node, ev.metric)
    key = (ev.farm, ev.node_pk or 0, ev.series_id or 0, rule.name, subj)
    recent = conn.execute(
        "SELECT id FROM alerts WHERE farm_id = %s AND coalesce(node_id, 0) = %s"
        " AND coalesce(series_id, 0) = %s AND rule = %s AND subject = %s AND ended_at IS NOT NULL"
        " AND ended_at > %s AND NOT late ORDER BY ended_at DESC LIMIT 1",
        (*key, _ts(now - rule.cooldown_s)),
    ).fetchone()
    if recent is not None and notify:
        cur = conn.execute(
            "UPDATE alerts SET ended_at = NULL, status = CASE WHEN acked_at IS NULL THEN 'open'"
            " ELSE 'acknowledged' END, flaps = flaps + 1, value = %s WHERE id = %s"
            " AND NOT EXISTS (SELECT 1 FROM alerts o WHERE o.farm_id = %s AND coalesce(o.node_id, 0) = %s"
            " AND coalesce(o.series_id, 0) = %s AND o.rule = %s AND o.subject = %s AND o.ended_at IS NULL)",
            (ev.value, recent[0], *key),
        )
        if cur.rowcount:
            _record(conn, recent[0], "opened", "rules", now, reopened=True, value=ev.value, t=ev.t)
        return None
    text = rule.message or ""
    parent = None
    if rule.kind == "silent" and notify:
        # topology: while a gateway of the farm is down its nodes' silence belongs to that alert
        found = conn.execute(
            "SELECT id FROM alerts WHERE farm_id = %s AND ended_at IS NULL AND details->>'kind' = 'gateway'"
            " ORDER BY id LIMIT 1",
            (ev.farm,),
        ).fetchone()
        parent = int(found[0]) if found else None
    row = conn.execute(
        "INSERT INTO alerts (farm_id, node_id, series_id, rule, severity, message, value, details,"
        " started_at, subject, escalate_at, late, last_value_at, parent_id)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT DO NOTHING RETURNING id",
        (ev.farm, ev.node_pk, ev.series_id, rule.name, rule.severity, text, ev.value, Jsonb(details),
         _ts(ev.since), subj, _ts(now + escalate_after_s) if notify and parent is None else None, not notify,
         _ts(ev.t), parent),
    ).fetchone()  # fmt: skip
    if row is None:
        return None
    alert_id = int(row[0])
    _record(conn, alert_id, "opened" if notify else "late", "rules", now, value=ev.value, t=ev.t)
    if parent is not None:
        _record(conn, alert_id, "attached", "rules", now, to=parent)
        _record(conn, parent, "attached", "rules", now, node=ev.node, alert=alert_id)
        return alert_id
    if rule.kind == "gateway" and notify:
        # nodes already alerted as silent belong to this gateway alert from now on
        conn.execute(
            "UPDATE alerts SET parent_id = %s WHERE farm_id = %s AND ended_at IS NULL AND id <> %s"
            " AND details->>'kind' = 'silent' AND parent_id IS NULL",
            (alert_id, ev.farm, alert_id),
        )
    if notify:
        enqueue(conn, _get(conn, alert_id), "alert.opened", dashboard_url, order=0)
    return alert_id


def close_alert(conn: psycopg.Connection[Any], ev: Event, now: float, dashboard_url: str) -> int | None:
    """Resolve the open alert of ``ev`` (its condition cleared); tell whoever was told it opened."""
    row = conn.execute(
        "UPDATE alerts SET ended_at = %s, status = 'resolved', resolved_by = 'rules', value = %s,"
        " escalate_at = NULL WHERE farm_id = %s AND coalesce(node_id, 0) = %s AND coalesce(series_id, 0) = %s"
        " AND rule = %s AND subject = %s AND ended_at IS NULL RETURNING id",
        (
            _ts(ev.t),
            ev.value,
            ev.farm,
            ev.node_pk or 0,
            ev.series_id or 0,
            ev.rule.name,
            subject(ev.rule, ev.node, ev.metric),
        ),
    ).fetchone()
    if row is None:
        return None
    alert_id = int(row[0])
    _record(conn, alert_id, "resolved", "rules", now, value=ev.value, t=ev.t)
    enqueue(conn, _get(conn, alert_id), "alert.resolved", dashboard_url, told_only=True)
    return alert_id


def acknowledge(conn: psycopg.Connection[Any], alert_id: int, by: str, now: float) -> bool:
    """Acknowledge an open alert; False if it was already acknowledged or resolved."""
    with conn.transaction():
        _get(conn, alert_id)
        cur = conn.execute(
            "UPDATE alerts SET status = 'acknowledged', acked_at = %s, acked_by = %s, escalate_at = NULL"
            " WHERE id = %s AND status = 'open'",
            (_ts(now), by, alert_id),
        )
        if cur.rowcount:
            _record(conn, alert_id, "acknowledged", by, now)
        return cur.rowcount > 0


def resolve(conn: psycopg.Connection[Any], alert_id: int, by: str, now: float, dashboard_url: str) -> bool:
    """Resolve by hand; the commissioners who were told get one resolve message."""
    with conn.transaction():
        _get(conn, alert_id)
        cur = conn.execute(
            "UPDATE alerts SET status = 'resolved', ended_at = %s, resolved_by = %s, escalate_at = NULL"
            " WHERE id = %s AND ended_at IS NULL",
            (_ts(now), by, alert_id),
        )
        if not cur.rowcount:
            return False
        _record(conn, alert_id, "resolved", by, now)
        enqueue(conn, _get(conn, alert_id), "alert.resolved", dashboard_url, told_only=True)
        return True


def escalate_due(
    conn: psycopg.Connection[Any], now: float, dashboard_url: str, escalate_after_s: float
) -> int:
    """Escalate every open, unacknowledged alert whose time has come (one transaction)."""
    n = 0
    with conn.transaction():
        rows = conn.execute(
            "SELECT id, escalation_level FROM alerts WHERE status = 'open' AND escalate_at <= %s"
            " ORDER BY id FOR UPDATE SKIP LOCKED",
            (_ts(now),),
        ).fetchall()
        for alert_id, level in rows:
            row = _get(conn, alert_id)
            nxt = conn.execute(
                "SELECT min(escalation_order) FROM farm_commissioners fc JOIN commissioners c"
                " ON c.id = fc.commissioner_id WHERE fc.farm_id = %s AND c.active"
                " AND fc.escalation_order > %s",
                (row["farm_id"], level),
            ).fetchone()
            if nxt is None or nxt[0] is None:
                conn.execute("UPDATE alerts SET escalate_at = NULL WHERE id = %s", (alert_id,))
                continue
            new_level = int(nxt[0])
            conn.execute(
                "UPDATE alerts SET escalation_level = %s, escalate_at = %s WHERE id = %s",
                (new_level, _ts(now + escalate_after_s), alert_id),
            )
            _record(conn, alert_id, "escalated", "rules", now, level=new_level)
            enqueue(conn, row, "alert.escalated", dashboard_url, order=new_level)
            n += 1
    return n
