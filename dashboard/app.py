"""The Streamlit entry point (``agri dashboard`` runs ``streamlit run`` on this file).

Pages: overview (``/``), farm (``/farm?farm=ID``), alerts (``/alerts?alert=ID``); ``&lang=en``
switches to English. Every page script (``dashboard/screens``) runs its view inside
:func:`dashboard.ui.guarded`, so a failure shows a message, never a traceback.
"""

from __future__ import annotations

import streamlit as st

from dashboard import ui
from dashboard.i18n import t

st.set_page_config(page_title="天空地一体化农业物联网", page_icon="🌾", layout="wide")
lang = ui.current_lang()
pages = {
    name: st.Page(
        f"screens/{name}.py", title=t(f"nav.{name}", lang), url_path=name, icon=icon, default=default
    )
    for name, icon, default in (
        ("overview", ":material/map:", True),
        ("farm", ":material/agriculture:", False),
        ("alerts", ":material/notifications:", False),
    )
}
ui.PAGES.update(pages)
current = st.navigation(list(pages.values()))
st.sidebar.caption(t("app.title", lang))
ui.language_toggle(lang)
current.run()
