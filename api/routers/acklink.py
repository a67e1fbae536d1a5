"""The signed acknowledge link a commissioner taps in a chat message (no token: the link is the key).

``GET /ack/{id}?by&exp&sig`` checks the signature and shows the alert with one button; it changes
nothing, because WeCom, DingTalk and Feishu fetch links to draw previews. The button POSTs the same
URL, which acknowledges the alert as ``link:<who>`` (recorded in its history like any other
acknowledgement). A tampered link is refused with 403, an expired one with 410; a second tap says
who acknowledged it and when.
"""

from __future__ import annotations

import time
from html import escape
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import HTMLResponse

from api.deps import Conn, State
from api.queries import alerts
from api.queries.errors import Conflict, NotFound
from kernel import links

router = APIRouter(tags=["alerts"])

_PAGE = """<!doctype html>
<html lang="zh"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>body{{font-family:sans-serif;max-width:32rem;margin:2rem auto;padding:0 1rem}}
.k{{color:#666}} button{{font-size:1.2rem;padding:.6rem 1.6rem}}</style></head>
<body><h2>{title}</h2>{body}</body></html>"""

By = Annotated[str, Query(min_length=1, max_length=100, description="Who the link was sent to")]
Exp = Annotated[int, Query(ge=0, description="Expiry, Unix seconds")]
Sig = Annotated[str, Query(min_length=1, max_length=100, description="base64url HMAC-SHA256")]
AlertId = Annotated[int, Path(ge=1, le=2**63 - 1)]


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(_PAGE.format(title=escape(title), body=body), status_code=status)


def _summary(a: alerts.AlertDetail) -> str:
    rows = [
        ("农场 / Farm", a.farm_id),
        ("节点 / Node", a.node_id or "—"),
        ("规则 / Rule", a.rule),
        ("级别 / Severity", a.severity),
        ("状态 / Status", a.status),
        ("开始 / Since", a.started_at.isoformat(timespec="minutes")),
    ]
    items = "".join(f"<li><span class=k>{escape(k)}:</span> {escape(str(v))}</li>" for k, v in rows)
    return f"<p>{escape(a.message)}</p><ul>{items}</ul>"


def _checked(
    st: State, conn: Conn, alert_id: int, by: str, exp: int, sig: str
) -> alerts.AlertDetail | HTMLResponse:
    try:
        links.verify(alert_id, by, exp, sig, st.config.link_key, time.time())
    except links.LinkError as exc:
        expired = "expired" in str(exc)
        return _page(
            "链接已过期 / Link expired" if expired else "链接无效 / Invalid link",
            "<p>请在看板中确认此告警。/ Acknowledge this alert on the dashboard.</p>",
            410 if expired else 403,
        )
    try:
        return alerts.get_alert(conn, alert_id)
    except NotFound:
        return _page("告警不存在 / No such alert", "", 404)


def _done(a: alerts.AlertDetail) -> HTMLResponse:
    who = escape(a.acked_by or a.resolved_by or "—")
    when = a.acked_at or a.ended_at
    at = escape(when.isoformat(timespec="minutes")) if when else "—"
    return _page("已处理 / Already handled", f"{_summary(a)}<p>{who} · {at}</p>")


_LINK_ROUTE: dict[str, Any] = {
    "path": "/ack/{alert_id}",
    "response_class": HTMLResponse,
    "responses": {
        403: {"description": "Bad signature"},
        404: {"description": "No such alert"},
        410: {"description": "Link expired"},
    },
}


@router.get(summary="Confirmation page of a signed acknowledge link (changes nothing)", **_LINK_ROUTE)
def confirm(st: State, conn: Conn, alert_id: AlertId, by: By, exp: Exp, sig: Sig) -> HTMLResponse:
    a = _checked(st, conn, alert_id, by, exp, sig)
    if isinstance(a, HTMLResponse):
        return a
    if a.status != "open":
        return _done(a)
    form = (
        # No action: the browser posts to this page's own URL, query string (the credential) included.
        '<form method="post"><button type="submit">确认告警 / Acknowledge</button></form>'
    )
    return _page("确认告警 / Acknowledge alert", f"{_summary(a)}<p>{escape(by)}</p>{form}")


@router.post(
    summary="Acknowledge through a signed link (the link's query string is its credential)", **_LINK_ROUTE
)
def acknowledge(st: State, conn: Conn, alert_id: AlertId, by: By, exp: Exp, sig: Sig) -> HTMLResponse:
    a = _checked(st, conn, alert_id, by, exp, sig)
    if isinstance(a, HTMLResponse):
        return a
    try:
        a = alerts.acknowledge(conn, alert_id, f"link:{by}")
    except Conflict:
        return _done(alerts.get_alert(conn, alert_id))
    return _page("已确认 / Acknowledged", f"{_summary(a)}<p>{escape(a.acked_by or by)}</p>")
