"""Overview: every farm on one map coloured by state, open alerts, today's completeness, gateways."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import alertsdata, data, mapview, ui
from dashboard.i18n import fmt_age, kind_label, t
from dashboard.state import COLOURS

overview_data = ui.cached(alertsdata.overview)


def page() -> None:
    lang = ui.current_lang()
    farm = st.query_params.get("farm")
    if farm and "farm" in ui.PAGES:
        # Links of the form <dashboard>/?farm=ID (older alert messages) land on that farm's page.
        st.switch_page(ui.PAGES["farm"], query_params=dict(st.query_params))
    cfg = ui.config()
    st.title(t("ov.header", lang))
    ov: data.Overview = overview_data(offline_after_s=cfg.dashboard_offline_after_s)
    if ov.farms.empty:
        st.info(t("empty.farms", lang))
        return
    farms, nodes, gws = ov.farms, ov.nodes, ov.gateways
    total_have = nodes.hours_with_data.sum() if not nodes.empty else 0
    total_exp = nodes.hours_expected.sum() if not nodes.empty else 0
    c = st.columns(4)
    c[0].metric(t("ov.farms", lang), len(farms))
    c[1].metric(t("ov.online", lang), f"{int((nodes.state != 'offline').sum())} / {len(nodes)}")
    if ov.alerts_configured:
        c[2].metric(t("ov.open_alerts", lang), int(farms.alerts_critical.sum() + farms.alerts_warning.sum()))
    else:
        c[2].metric(t("ov.open_alerts", lang), "–", help=t("not_configured.alerts", lang))
    c[3].metric(t("ov.completeness", lang), f"{100 * total_have / total_exp:.1f} %" if total_exp else "–")

    left, right = st.columns([3, 2])
    with left:
        st.subheader(t("ov.map", lang))
        fig = mapview.overview_map(
            farms,
            nodes,
            gws,
            lang,
            boundaries=ov.boundaries,
            blocks=mapview.coloured_blocks(ov.blocks, None),
            tile_url=cfg.dashboard_tile_url,
            tile_attribution=cfg.dashboard_tile_attribution,
        )
        st.plotly_chart(fig, key="overview_map", config={"displayModeBar": False})
        if not cfg.dashboard_tile_url:
            st.caption(t("ov.tiles_off", lang))
    with right:
        st.subheader(t("ov.alerts_by_severity", lang))
        if ov.alerts_configured:
            sev = pd.DataFrame(
                {
                    t("col.severity", lang): [
                        t(f"severity.{s}", lang) for s in ("critical", "warning", "info")
                    ],
                    t("ov.open_alerts", lang): [
                        int(farms[f"alerts_{s}"].sum()) for s in ("critical", "warning", "info")
                    ],
                }
            )
            st.dataframe(sev, hide_index=True)
        else:
            st.info(t("not_configured.alerts", lang), icon=":material/notifications_off:")
        st.subheader(t("ov.gateways", lang))
        if gws.empty:
            st.caption(t("ov.no_gateways", lang))
        else:
            st.dataframe(
                pd.DataFrame(
                    {
                        t("col.gateway", lang): gws.name,  # named after its farm: no farm column
                        t("col.uplink", lang): [t(f"uplink.{u}", lang) for u in gws.uplink],
                        t("col.last_seen", lang): [
                            fmt_age(a if pd.notna(a) else None, lang) for a in gws.age_s
                        ],
                        t("col.backlog", lang): ["—" if pd.isna(b) else f"{int(b):,}" for b in gws.backlog],
                    }
                ),
                hide_index=True,
            )

    st.subheader(t("ov.farm_table", lang))
    # One table, not a row of widgets per farm: 50 farms would be 300 elements to send.
    newest = nodes.groupby("farm_id")["age_s"].min() if not nodes.empty else pd.Series(dtype=float)
    suffix = "&lang=en" if lang == "en" else ""
    table = pd.DataFrame(
        {
            t("col.farm", lang): farms.name,
            t("col.kind", lang): [kind_label(k, lang) for k in farms.kind],
            t("col.state", lang): [t("state." + s, lang) for s in farms.state],
            t("col.online", lang): [f"{o}/{n}" for o, n in zip(farms.online, farms.nodes, strict=True)],
            t("col.alerts", lang): (farms.alerts_critical + farms.alerts_warning).astype(int),
            t("col.completeness", lang): [
                f"{100 * c:.0f} %" if pd.notna(c) else "–" for c in farms.completeness
            ],
            t("col.last_seen", lang): [
                fmt_age(newest.get(f) if pd.notna(newest.get(f)) else None, lang) for f in farms.id
            ],
            "link": [f"farm?farm={f}{suffix}" for f in farms.id],
        }
    )
    st.dataframe(
        table,
        hide_index=True,
        column_config={"link": st.column_config.LinkColumn(" ", display_text=t("ov.open_farm", lang))},
        key="farm_table",
    )
    st.caption(
        " · ".join(f"<span style='color:{COLOURS[s]}'>●</span> {t('state.' + s, lang)}" for s in COLOURS),
        unsafe_allow_html=True,
    )
