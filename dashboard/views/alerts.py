"""Alerts: live feed, filters, detail with history, acknowledge / resolve, deep link ?alert=ID."""

from __future__ import annotations

import streamlit as st

from dashboard import ui
from dashboard.i18n import t


def page() -> None:
    lang = ui.current_lang()
    st.title(t("al.header", lang))
    st.info(t("not_configured.alerts", lang), icon=":material/notifications_off:")
