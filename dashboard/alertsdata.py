"""Alerts for the pages: feed, counts, detail, periods to shade, acknowledge / resolve with a token.

Reads and changes go through the API's query functions (``api.queries.alerts``, the same steps the
HTTP API and `agri alerts` take); the token is checked with ``api.queries.tokens`` exactly as the API
checks a bearer token, so the dashboard grants nothing the API would refuse. Until the API's alert
queries exist, :data:`CONFIGURED` is False and the pages say so.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd

from api.queries import tokens
from dashboard import data
from dashboard.data import Source

try:  # the API's alert queries land separately; until then the alert panels say "not configured"
    from api.queries import alerts as aq
except ImportError:  # pragma: no cover - depends on what is installed
    aq = None  # type: ignore[assignment]

CONFIGURED = aq is not None
UNRESOLVED = ("open", "acknowledged")
COLUMNS = [
    "id", "farm_id", "node_id", "metric", "rule", "severity", "status", "message", "value",
    "started_at", "ended_at", "acked_by", "resolved_by",
]  # fmt: skip


class TokenRejected(Exception):
    """The token is unknown or revoked."""


class ScopeMissing(Exception):
    """The token is valid but lacks the scope the action needs (``str()`` is the scope)."""


def _all(src: Source, **kw: Any) -> list[Any]:
    out: list[Any] = []
    cursor = None
    with src.conn() as conn:
        while True:
            page = aq.list_alerts(conn, limit=1000, cursor=cursor, **kw)
            out.extend(page.items)
            cursor = page.next_cursor
            if cursor is None or len(out) >= 5000:
                return out


def alert_frame(
    src: Source,
    *,
    farm: str | None = None,
    statuses: tuple[str, ...] = UNRESOLVED,
    severities: tuple[str, ...] = (),
    since: datetime | None = None,
) -> pd.DataFrame:
    """Alerts newest first, filtered by status (any of), severity (any of; all if empty), farm."""
    rows: list[Any] = []
    for status in statuses:
        rows += _all(src, farm=farm, status=status, since=since)
    rows = [a for a in rows if not severities or a.severity in severities]
    rows.sort(key=lambda a: a.id, reverse=True)
    df = pd.DataFrame([{c: getattr(a, c) for c in COLUMNS} for a in rows], columns=COLUMNS)
    for col in ("started_at", "ended_at"):
        df[col] = pd.to_datetime(df[col], utc=True)
    return df


def open_counts(src: Source) -> pd.DataFrame:
    """Unresolved alerts per farm, node and severity (columns farm_id, node_id, severity, n)."""
    df = alert_frame(src)
    if df.empty:
        return pd.DataFrame(columns=["farm_id", "node_id", "severity", "n"])
    g = df.groupby(["farm_id", df.node_id.fillna(""), "severity"]).size()
    return g.rename("n").reset_index()


def periods(src: Source, farm: str, start: datetime, end: datetime) -> pd.DataFrame:
    """Alerts of a farm overlapping [start, end): node_id, metric, rule, severity, started_at, ended_at."""
    df = alert_frame(src, farm=farm, statuses=("open", "acknowledged", "resolved"))
    if df.empty:
        return df
    ended = df.ended_at.where(df.ended_at.notna(), pd.Timestamp(end))
    return df[(df.started_at < pd.Timestamp(end)) & (ended > pd.Timestamp(start))]


def detail(src: Source, alert_id: int) -> Any:
    with src.conn() as conn:
        return aq.get_alert(conn, alert_id)


def act(src: Source, token: str, alert_id: int, action: str, dashboard_url: str) -> Any:
    """Acknowledge or resolve as the token's owner; the token needs the ``operate`` scope."""
    if action not in ("ack", "resolve"):
        raise ValueError(f"action must be ack or resolve, got {action!r}")
    with src.conn() as conn:
        who = tokens.verify(conn, token.strip())
        if who is None:
            raise TokenRejected
        if not who.may("operate"):
            raise ScopeMissing("operate")
        farms = who.farm_list()
        if action == "ack":
            return aq.acknowledge(conn, alert_id, who.name, farms=farms)
        return aq.resolve(conn, alert_id, who.name, dashboard_url, farms=farms)


def overview(src: Source, *, offline_after_s: float) -> data.Overview:
    """The overview with nodes and farms coloured by their unresolved alerts too."""
    counts = open_counts(src) if CONFIGURED else None
    return data.overview(src, offline_after_s=offline_after_s, alert_counts=counts)
