"""Alert lifecycle in the database: open -> acknowledged -> resolved, every transition recorded in
``alert_events`` (who, when), and the outbox rows of each change written in the same transaction.

One open alert per (farm, node, series, rule) (the partial unique index of migration 0001).
A condition that returns within the rule's ``cooldown_s`` of the last resolve *reopens* that
alert (counted in ``flaps``) without a new message: a flapping sensor buzzes nobody twice.
Escalation: commissioners of the farm have an escalation order; order 0 is told when an alert
opens, order k when it is still unacknowledged ``k * escalate_after_s`` after it opened.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from alerts.engine import Event, subject
from store.alert_lifecycle import SEVERITY_RANK as SEVERITY_RANK
from store.alert_lifecycle import AlertNotFound as AlertNotFound
from store.alert_lifecycle import _ts as _ts
from store.alert_lifecycle import acknowledge as acknowledge
from store.alert_lifecycle import alert_view as alert_view
from store.alert_lifecycle import enqueue as enqueue
from store.alert_lifecycle import get_alert, record
from store.alert_lifecycle import resolve as resolve

_get = get_alert  # the service reads and records through these names
_record = record


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
    text = " · ".join(x for x in (rule.message, ev.note) if x)
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
