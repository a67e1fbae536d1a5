"""Alerts: list and filter (read), detail with history (read), acknowledge and resolve (operate)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import Conn, Operator, Reader, State
from api.errors import AUTH_RESPONSES, CONFLICT, INVALID, NOT_FOUND
from api.queries import alerts
from api.queries.alerts import AlertDetail, Severity, Status
from api.queries.models import Page
from api.routers.readings import Newest

router = APIRouter(tags=["alerts"], responses={**AUTH_RESPONSES, **INVALID, **NOT_FOUND})


@router.get("/alerts", response_model=Page[alerts.Alert], summary="Alerts, newest first")
def list_alerts(
    conn: Conn,
    listing: Newest,
    status: Status | None = None,
    severity: Severity | None = None,
    rule: Annotated[str | None, Query(max_length=100)] = None,
) -> Page[alerts.Alert]:
    return alerts.list_alerts(conn, status=status, severity=severity, rule=rule, **listing)


@router.get("/alerts/{alert_id}", response_model=AlertDetail, summary="An alert with its history")
def get_alert(conn: Conn, who: Reader, alert_id: int) -> AlertDetail:
    return alerts.get_alert(conn, alert_id, farms=who.farm_list())


@router.post(
    "/alerts/{alert_id}/ack",
    response_model=AlertDetail,
    responses=CONFLICT,
    summary="Acknowledge an open alert",
)
def acknowledge(conn: Conn, who: Operator, alert_id: int) -> AlertDetail:
    return alerts.acknowledge(conn, alert_id, f"api:{who.name}", farms=who.farm_list())


@router.post(
    "/alerts/{alert_id}/resolve",
    response_model=AlertDetail,
    responses=CONFLICT,
    summary="Resolve an alert by hand (the commissioners who were told get one message)",
)
def resolve(st: State, conn: Conn, who: Operator, alert_id: int) -> AlertDetail:
    return alerts.resolve(conn, alert_id, f"api:{who.name}", st.config.dashboard_url, farms=who.farm_list())
