"""Alerts: live feed, filters, detail with history, acknowledge / resolve, deep link ?alert=ID.

A commissioner's message links to ``<dashboard>/alerts?alert=<id>``: the page opens on that alert.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import pandas as pd
import streamlit as st

from api.queries.errors import QueryError
from dashboard import alertsdata, data, ui
from dashboard.i18n import Lang, fmt_time, metric_label, t

alert_frame = ui.cached(alertsdata.alert_frame)
list_farms = ui.cached(data.list_farms)
SEVERITIES = ("critical", "warning", "info")
STATUSES = ("open", "acknowledged", "resolved")
LIVE_EVERY_S = 15


def _tz(farm_id: str) -> str:
    return next((f.tz for f in list_farms() if f.id == farm_id), "Asia/Shanghai")


def alert_link(alert_id: int, lang: Lang) -> str:
    base = (ui.config().dashboard_url or "").rstrip("/")
    q = {"alert": alert_id} | ({"lang": "en"} if lang == "en" else {})
    return f"{base}/alerts?{urlencode(q)}"


def _filters(lang: Lang) -> tuple[str | None, tuple[str, ...], tuple[str, ...]]:
    farms = list_farms()
    names = {f.id: f.name for f in farms}
    c1, c2, c3 = st.columns([2, 2, 2])
    farm = c1.selectbox(
        t("al.filter_farm", lang),
        [None, *names],
        format_func=lambda f: t("al.all", lang) if f is None else names[f],
        key="al_farm",
    )
    sev = c2.multiselect(
        t("al.filter_severity", lang),
        SEVERITIES,
        default=list(SEVERITIES),
        format_func=lambda s: t(f"severity.{s}", lang),
        key="al_sev",
    )
    status = c3.multiselect(
        t("al.filter_status", lang),
        STATUSES,
        default=["open", "acknowledged"],
        format_func=lambda s: t(f"al.status.{s}", lang),
        key="al_status",
    )
    return farm, tuple(sev), tuple(status)


def _feed(lang: Lang, farm: str | None, sev: tuple[str, ...], status: tuple[str, ...]) -> None:
    df: pd.DataFrame = alert_frame(farm=farm, statuses=status, severities=sev)
    if df.empty:
        st.info(t("al.none", lang))
        return
    table = pd.DataFrame(
        {
            "ID": df.id,
            t("col.severity", lang): [t(f"severity.{s}", lang) for s in df.severity],
            t("col.status", lang): [t(f"al.status.{s}", lang) for s in df.status],
            t("col.farm", lang): df.farm_id,
            t("col.node", lang): df.node_id.fillna("–"),
            t("col.metric", lang): [metric_label(m, lang) if m else "–" for m in df.metric],
            t("col.message", lang): df.message,
            t("col.started", lang): [
                fmt_time(x, _tz(f)) for x, f in zip(df.started_at, df.farm_id, strict=True)
            ],
            t("col.acked_by", lang): df.acked_by.fillna("–"),
        }
    )
    event = st.dataframe(
        table, hide_index=True, on_select="rerun", selection_mode="single-row", key="al_table"
    )
    rows = getattr(getattr(event, "selection", None), "rows", None) or []
    if rows:
        chosen = int(df.id.iloc[rows[0]])
        if st.query_params.get("alert") != str(chosen):
            st.query_params["alert"] = str(chosen)
            st.rerun()


def _detail(lang: Lang, alert_id: int) -> None:
    src = ui.source()
    try:
        a: Any = alertsdata.detail(src, alert_id)
    except QueryError:
        st.warning(t("al.not_found", lang, id=alert_id))
        return
    tz = _tz(a.farm_id)
    with st.container(border=True):
        st.subheader(t("al.detail", lang, id=a.id))
        sev = {"critical": "red", "warning": "orange", "info": "blue"}.get(a.severity, "gray")
        st.markdown(
            f":{sev}-background[{t('severity.' + a.severity, lang)}] "
            f"**{t('al.status.' + a.status, lang)}** · {a.farm_id}"
            + (f" / {a.node_id}" if a.node_id else "")
            + (f" · {metric_label(a.metric, lang)}" if a.metric else "")
        )
        st.markdown(a.message)
        c = st.columns(4)
        c[0].metric(t("col.value", lang), "–" if a.value is None else f"{a.value:g}")
        c[1].metric(t("col.started", lang), fmt_time(a.started_at, tz, short=True))
        c[2].metric(t("col.ended", lang), fmt_time(a.ended_at, tz, short=True))
        c[3].metric(t("col.acked_by", lang), a.acked_by or "–")
        st.caption(f"{t('al.link', lang)}: {alert_link(a.id, lang)}")
        st.markdown(f"**{t('al.history', lang)}**")
        st.dataframe(
            pd.DataFrame(
                {
                    t("col.time", lang): [fmt_time(e.at, tz, seconds=True) for e in a.events],
                    t("col.status", lang): [t(f"al.event.{e.kind}", lang) for e in a.events],
                    t("al.by", lang): [e.by_whom for e in a.events],
                }
            ),
            hide_index=True,
        )
        if a.status != "resolved":
            _actions(lang, a.id, a.status)


def _actions(lang: Lang, alert_id: int, status: str) -> None:
    token = st.text_input(t("al.token", lang), type="password", key="al_token")
    c1, c2, _ = st.columns([1, 1, 4])
    ack = c1.button(t("al.ack", lang), key="al_ack", disabled=status != "open", type="primary")
    res = c2.button(t("al.resolve", lang), key="al_resolve")
    if not (ack or res):
        return
    if not token:
        st.warning(t("al.need_token", lang))
        return
    try:
        alertsdata.act(
            ui.source(), token, alert_id, "ack" if ack else "resolve", ui.config().dashboard_url or ""
        )
    except alertsdata.TokenRejected:
        st.error(t("err.token_invalid", lang))
        return
    except alertsdata.ScopeMissing as exc:
        st.error(t("err.scope", lang, scope=str(exc)))
        return
    except QueryError as exc:
        st.warning(t("err.query", lang, detail=str(exc)))
        return
    st.cache_data.clear()  # the feed and the overview must show the change at once
    st.session_state["al_done"] = t("al.acked" if ack else "al.resolved", lang, id=alert_id)
    st.rerun()


def page() -> None:
    lang = ui.current_lang()
    st.title(t("al.header", lang))
    if not alertsdata.CONFIGURED:
        st.info(t("not_configured.alerts", lang), icon=":material/notifications_off:")
        return
    done = st.session_state.pop("al_done", None)
    if done:
        st.success(done)
    wanted = st.query_params.get("alert")
    if wanted is not None:
        if wanted.isdigit():
            _detail(lang, int(wanted))
        else:
            st.warning(t("al.not_found", lang, id=wanted))
    farm, sev, status = _filters(lang)

    @st.fragment(run_every=LIVE_EVERY_S)
    def live() -> None:
        _feed(lang, farm, sev, status)
        st.caption(t("updated", lang, time=datetime.now().astimezone().strftime("%H:%M:%S")))

    live()
