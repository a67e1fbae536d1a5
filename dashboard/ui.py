"""Streamlit glue shared by the pages: language, cached data access, error messages, downloads."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pandas as pd
import streamlit as st

from api.queries.errors import QueryError
from dashboard import data, export
from dashboard.config import DashboardConfig, DashboardConfigError, load_config
from dashboard.i18n import Lang, lang_of, t
from kernel.log import event, get_logger

log = get_logger("dashboard")
PAGES: dict[str, Any] = {}  # name -> st.Page, filled by app.py for st.page_link


class NotConfigured(Exception):
    """No database is configured (AGRI_DATABASE_URL unset)."""


# --- language ---------------------------------------------------------------------------------------


def current_lang() -> Lang:
    """?lang=en in the URL wins (links carry it), then the session, then the configured default."""
    q = st.query_params.get("lang")
    if q in ("zh", "en"):
        lang = lang_of(q)
    elif "lang" in st.session_state:
        lang = lang_of(st.session_state["lang"])
    else:
        try:
            lang = load_config().dashboard_lang
        except DashboardConfigError:
            lang = "zh"
    st.session_state["lang"] = lang
    return lang


def language_toggle(lang: Lang) -> None:
    """One click to the other language; the choice is kept in the URL (?lang=en) and the session."""
    if st.sidebar.button(t("lang.toggle", lang), key="lang_toggle", icon=":material/translate:"):
        new = "en" if lang == "zh" else "zh"
        st.session_state["lang"] = new
        st.query_params["lang"] = new
        st.rerun()
    if lang == "en":
        st.query_params["lang"] = "en"
    elif st.query_params.get("lang") == "en":
        del st.query_params["lang"]


# --- data access ------------------------------------------------------------------------------------


def config() -> DashboardConfig:
    return load_config()


@st.cache_resource(show_spinner=False)
def _source(dsn: str) -> data.Source:
    return data.Source(dsn)


def source() -> data.Source:
    cfg = config()
    if not cfg.database_url:
        raise NotConfigured
    return _source(cfg.database_url)


def tick() -> int:
    """Changes every AGRI_DASHBOARD_CACHE_S seconds: part of every cache key, so data ages out."""
    ttl = config().dashboard_cache_s
    return int(time.time() // ttl) if ttl > 0 else time.time_ns()


def cached(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn(source, *args)`` cached per (args, tick); the source itself is not hashed."""

    @st.cache_data(show_spinner=False, ttl=3600, max_entries=256)
    def run(_src: data.Source, dsn: str, name: str, tick_: int, *args: Any, **kw: Any) -> Any:
        return fn(_src, *args, **kw)

    def call(*args: Any, **kw: Any) -> Any:
        src = source()
        return run(src, src.dsn, fn.__name__, tick(), *args, **kw)

    call.__name__ = fn.__name__
    return call


# --- errors -----------------------------------------------------------------------------------------


def guarded(body: Callable[[], None], lang: Lang) -> None:
    """Run a page; show a clear message instead of a traceback for every failure."""
    try:
        body()
    except NotConfigured:
        st.warning(t("err.not_configured_db", lang), icon=":material/settings:")
    except DashboardConfigError as exc:
        st.error(t("err.config", lang, detail=str(exc)))
    except data.DataUnavailable as exc:
        event(log, "database_unavailable", detail=str(exc))
        st.error(t("err.db_down", lang), icon=":material/cloud_off:")
        st.caption(str(exc))
    except QueryError as exc:
        st.warning(t("err.query", lang, detail=str(exc)))
    except Exception as exc:
        # Streamlit's own control-flow exceptions (rerun, stop, page switch) must pass through.
        if type(exc).__module__.startswith("streamlit."):
            raise
        ref = secrets.token_hex(4)
        event(log, "page_error", level=40, ref=ref, error=repr(exc))
        log.exception("page_error ref=%s", ref)
        st.error(t("err.internal", lang, ref=ref))


# --- small widgets ----------------------------------------------------------------------------------


def downloads(frame: pd.DataFrame, name: str, lang: Lang, key: str) -> None:
    """CSV and Excel of exactly the frame a chart shows."""
    if frame.empty:
        return
    c1, c2, _ = st.columns([1, 1, 4])
    c1.download_button(
        t("export.csv", lang),
        lambda: export.to_csv(frame),
        file_name=f"{name}.csv",
        mime="text/csv",
        key=f"{key}_csv",
        on_click="ignore",
        icon=":material/download:",
    )
    c2.download_button(
        t("export.xlsx", lang),
        lambda: export.to_xlsx(frame),
        file_name=f"{name}.xlsx",
        mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        key=f"{key}_xlsx",
        on_click="ignore",
        icon=":material/table:",
    )


def now_local(tz: str) -> datetime:
    now: datetime = pd.Timestamp.now(tz=tz).to_pydatetime()
    return now
