"""Farm page: latest values with QC flags, time series, node health, imagery, agronomic panels."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd
import streamlit as st

from analytics.agro import THI_BANDS
from analytics.agro.config import DO_LOW_MGL
from analytics.imagery.colour import DISPLAY_RANGE
from analytics.qc import FAIL, SUSPECT
from api.queries.models import Farm
from dashboard import agro, alertsdata, charts, data, mapview, ui
from dashboard.i18n import Lang, fmt_age, fmt_time, fmt_value, kind_label, metric_label, t

list_farms = ui.cached(data.list_farms)
list_nodes = ui.cached(data.list_nodes)
latest_values = ui.cached(data.latest_values)
chart_series = ui.cached(data.chart_series)
node_health = ui.cached(data.node_health)
list_gateways = ui.cached(data.list_gateways)
hourly = ui.cached(data.hourly)
alert_periods = ui.cached(alertsdata.periods)
sky_series = ui.cached(data.sky_series)
farm_map = ui.cached(data.farm_map)
overview_data = ui.cached(alertsdata.overview)
anomalies = ui.cached(data.anomalies)

QC_MARK: dict[int, str] = {int(SUSPECT): "⚠", int(FAIL): "✗"}
RANGES = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
AGRO_METRICS = {
    "orchard": ("air_t", "air_rh", "wind_ms", "solar_wm2", "rain_mm", "leaf_wet"),
    "tea_garden": ("air_t", "air_rh", "wind_ms", "solar_wm2", "rain_mm", "leaf_wet"),
    "pig_farm": ("air_t", "air_rh", "nh3_ppm", "co2_ppm", "h2s_ppm", "water_l"),
    "pond": ("do_mgl", "ph", "water_t"),
}


def _choose_farm(lang: Lang) -> Farm | None:
    farms: list[Farm] = list_farms()
    if not farms:
        st.info(t("empty.farms", lang))
        return None
    ids = [f.id for f in farms]
    wanted = st.query_params.get("farm")
    if wanted is not None and wanted not in ids:
        st.warning(t("not_found.farm", lang, farm=wanted))
    idx = ids.index(wanted) if wanted in ids else 0
    names = {f.id: f"{f.name} · {kind_label(f.kind, lang)}" for f in farms}
    chosen = st.sidebar.selectbox(
        t("farm.choose", lang),
        ids,
        index=idx,
        format_func=names.__getitem__,
        key="farm_choice",
        on_change=lambda: st.session_state.update(farm_touched=True),
    )
    if wanted != chosen and (wanted in ids or st.session_state.get("farm_touched")):
        st.query_params["farm"] = chosen
    return farms[ids.index(chosen)]


def _range(lang: Lang, tz: str) -> tuple[datetime, datetime]:
    keys = [*RANGES, "custom"]
    wanted = st.query_params.get("range")  # links may carry ?range=30d
    choice = st.segmented_control(
        t("farm.range", lang),
        keys,
        default=wanted if wanted in RANGES else "7d",
        format_func=lambda k: t(f"range.{k}", lang),
        key="range",
    )
    now = ui.now_local(tz)
    if choice == "custom":
        c1, c2 = st.columns(2)
        d0 = c1.date_input(t("range.start", lang), value=(now - timedelta(days=7)).date(), key="d0")
        d1 = c2.date_input(t("range.end", lang), value=now.date(), key="d1")
        start = pd.Timestamp(d0, tz=tz).to_pydatetime()
        end = pd.Timestamp(d1, tz=tz).to_pydatetime() + timedelta(days=1)
        return start, max(end, start + timedelta(hours=1))
    span = RANGES.get(choice or "7d", RANGES["7d"])
    # Round to the minute so the cache key is stable within a minute.
    end = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    return end - span, end


def _cell(metric: str, value: float | None, flag: int, stale: bool) -> str:
    text = fmt_value(metric, value)
    if flag in QC_MARK:
        text += f" {QC_MARK[flag]}"
    return text + (" ※" if stale else "")


def _latest(farm: Farm, lang: Lang, offline_after_s: float) -> None:
    st.subheader(t("farm.latest", lang))
    lv: pd.DataFrame = latest_values(farm.id)
    if lv.empty:
        st.info(t("empty.nodes", lang))
        return
    order = data.farm_metrics_of(lv.metric.unique())
    cells: dict[str, dict[str, str]] = {}
    newest: dict[str, Any] = {}
    for row in lv.itertuples():
        stale = pd.isna(row.age_s) or row.age_s > offline_after_s
        cells.setdefault(row.node_id, {})[row.metric] = _cell(row.metric, row.value, row.qc, stale)
        if pd.notna(row.time) and (row.node_id not in newest or row.time > newest[row.node_id]):
            newest[row.node_id] = row.time
    table = pd.DataFrame(
        [
            {
                t("col.node", lang): node,
                t("col.time", lang): fmt_time(newest.get(node), farm.tz),
                **{metric_label(m, lang): vals.get(m, "") for m in order},
            }
            for node, vals in sorted(cells.items())
        ]
    )
    st.dataframe(table, hide_index=True)
    st.caption(t("farm.qc_legend", lang))


def _series(farm: Farm, nodes: list[Any], lang: Lang, start: datetime, end: datetime) -> None:
    st.subheader(t("farm.charts", lang))
    metrics = data.farm_metrics(nodes)
    if not metrics:
        st.info(t("empty.range", lang))
        return
    c1, c2 = st.columns([1, 2])
    metric = c1.selectbox(
        t("farm.metric", lang), metrics, format_func=lambda m: metric_label(m, lang), key="metric"
    )
    have = [n.node_id for n in nodes if metric in n.metrics]
    chosen = c2.multiselect(t("farm.nodes", lang), have, default=have, key=f"nodes_{metric}")
    chart: data.Chart = chart_series(farm.id, metric, start, end, nodes=tuple(chosen))
    frame = chart.frame
    st.caption(t("farm.bucket", lang, bucket=chart.bucket) + " · " + t("farm.local_time", lang, tz=farm.tz))
    if frame.empty or frame["count"].sum() == 0:
        st.info(t("empty.range", lang))
        return
    marks: pd.DataFrame = anomalies(farm.id, metric, tuple(chosen), start, end)
    fig = charts.timeseries(
        frame,
        metric,
        farm.tz,
        lang,
        alert_periods=_periods(farm, metric, chosen, start, end),
        anomalies=marks if not marks.empty else None,
    )
    st.plotly_chart(fig, key="series_chart")
    st.caption(t("farm.legend_gap", lang))
    ui.downloads(_export_frame(frame, metric), f"{farm.id}-{metric}-{chart.bucket}", lang, key="series")


def _periods(
    farm: Farm, metric: str, nodes: list[str], start: datetime, end: datetime
) -> list[tuple[datetime, datetime | None]]:
    """Alert periods of the chosen nodes on this metric (or on the whole node), to shade."""
    if not alertsdata.CONFIGURED:
        return []
    df: pd.DataFrame = alert_periods(farm.id, start, end)
    if df.empty:
        return []
    mine = df[df.node_id.isin(nodes) & (df.metric.isna() | (df.metric == metric))]
    return [(s, None if pd.isna(e) else e) for s, e in zip(mine.started_at, mine.ended_at, strict=True)]


def _export_frame(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    out = frame.rename(columns={"node_id": "node", "mean": metric}).copy()
    return out[["node", "time", metric, "min", "max", "count", "qc"]]


def _health(farm: Farm, lang: Lang, start: datetime, end: datetime) -> None:
    st.subheader(t("farm.health", lang))
    h: pd.DataFrame = node_health(farm.id)
    if h.empty:
        st.info(t("empty.nodes", lang))
        return
    st.dataframe(
        pd.DataFrame(
            {
                t("col.node", lang): h.name,
                t("col.last_seen", lang): [fmt_age(a if pd.notna(a) else None, lang) for a in h.age_s],
                t("col.battery", lang): [fmt_value("bat_v", v if pd.notna(v) else None) for v in h.battery_v],
                t("col.rssi", lang): [fmt_value("rssi_dbm", v if pd.notna(v) else None) for v in h.rssi_dbm],
                t("col.msgs", lang): h.msgs_received,
                t("col.missing", lang): h.msgs_missing,
                t("col.dropped", lang): h.dropped_reported,
                t("col.completeness", lang): [
                    f"{100 * c:.1f} %" if pd.notna(c) else "–" for c in h.completeness
                ],
                t("col.firmware", lang): h.firmware_version.fillna("–"),
            }
        ),
        hide_index=True,
    )
    now = datetime.now(UTC)
    for g in list_gateways(farm.id):
        health = g.meta.get("health") or {}
        st.caption(
            t(
                "farm.gateway_health", lang,
                name=g.name or g.gateway_id,
                age=fmt_age((now - g.last_seen).total_seconds() if g.last_seen else None, lang),
                backlog=health.get("depth", "—"),
                drops=health.get("drops", "—"),
            )
        )  # fmt: skip
    c1, c2 = st.columns(2)
    for col, metric, title in ((c1, "bat_v", "farm.battery_trend"), (c2, "rssi_dbm", "farm.rssi_trend")):
        ch: data.Chart = chart_series(farm.id, metric, start, end)
        if ch.frame.empty or ch.frame["count"].sum() == 0:
            col.caption(f"{t(title, lang)}: {t('empty.range', lang)}")
            continue
        fig = charts.timeseries(
            ch.frame, metric, farm.tz, lang, title=t(title, lang), height=260, legend=False
        )
        col.plotly_chart(fig, key=f"health_{metric}")


def _map(farm: Farm, lang: Lang) -> None:
    """The farm's blocks coloured by their newest mean NDVI, under them the latest NDVI image,
    and the farm's sensor nodes in their state colours; a colour bar and the scene's date."""
    fm: data.FarmMap = farm_map(farm.id)
    if not fm.blocks and fm.image is None:
        return
    img = fm.image
    vmin, vmax = (img.vmin, img.vmax) if img else DISPLAY_RANGE["ndvi"]
    blocks = mapview.coloured_blocks(fm.blocks, farm.tz, over_image=img is not None)
    ov: data.Overview = overview_data(offline_after_s=ui.config().dashboard_offline_after_s)
    nodes = ov.nodes[ov.nodes.farm_id == farm.id] if not ov.nodes.empty else ov.nodes
    cfg = ui.config()
    fig = mapview.overview_map(
        pd.DataFrame(),
        nodes,
        pd.DataFrame(),
        lang,
        boundaries={farm.id: farm.boundary} if farm.boundary else None,
        blocks=blocks,
        tile_url=cfg.dashboard_tile_url,
        tile_attribution=cfg.dashboard_tile_attribution,
        height=420,
        image=(img.png, img.bounds) if img else None,
        colour_bar=(vmin, vmax, "NDVI"),
    )
    st.plotly_chart(fig, key="farm_map", config={"displayModeBar": False})
    if img is not None:
        st.caption(
            t(
                "farm.map_scene",
                lang,
                index=img.index.upper(),
                date=fmt_time(img.acquired_at, farm.tz),
                source=t(f"source.{img.source}", lang),
            )
        )
    else:
        st.caption(t("farm.map_no_image", lang))


def _sky(farm: Farm, lang: Lang, start: datetime, end: datetime) -> None:
    st.subheader(t("farm.sky", lang))
    _map(farm, lang)
    # Imagery comes every few days: a 30-day window at least, so a week's range still shows some.
    frames: dict[str, pd.DataFrame] = sky_series(farm.id, min(start, end - timedelta(days=30)), end)
    index = {m: f for m, f in frames.items() if m != "soil_vwc"}
    if not index:
        st.info(t("not_configured.sky", lang), icon=":material/satellite_alt:")
        return
    fig = charts.index_beside_soil(index, frames.get("soil_vwc"), farm.tz, lang, t("farm.sky_chart", lang))
    st.plotly_chart(fig, key="sky_chart")
    st.caption(t("farm.sky_note", lang))


def _agro(farm: Farm, lang: Lang, start: datetime, end: datetime) -> None:
    st.subheader(t("farm.agro", lang))
    wanted = AGRO_METRICS.get(farm.kind, ())
    frames: dict[str, pd.DataFrame] = hourly(farm.id, wanted, start, end)
    if not frames:
        st.info(
            t("agro.no_inputs", lang, metrics=", ".join(metric_label(m, lang, unit=False) for m in wanted))
        )
        return
    if farm.kind in ("orchard", "tea_garden"):
        _agro_crop(farm, frames, lang, start)
    elif farm.kind == "pig_farm":
        _agro_pig(farm, frames, lang, end)
    elif farm.kind == "pond":
        _agro_pond(farm, frames, lang, end)


def _agro_crop(farm: Farm, frames: dict[str, pd.DataFrame], lang: Lang, start: datetime) -> None:
    wb = agro.water_balance(frames, lat=farm.lat or 30.8, elevation_m=farm.elevation_m or 200.0)
    if wb is None:
        st.info(t("agro.no_inputs", lang, metrics=metric_label("air_t", lang, unit=False)))
        return
    c1, c2 = st.columns(2)
    c1.plotly_chart(charts.bars(wb.days, wb.et0_mm, t("agro.et0", lang)), key="agro_et0")
    c2.plotly_chart(
        charts.lines(wb.days, {t("agro.balance", lang): wb.cumulative_mm}, t("agro.balance", lang)),
        key="agro_balance",
    )
    since: date = st.date_input(t("agro.gdd_since", lang), value=start.date(), key="gdd_since")
    since_dt = pd.Timestamp(since, tz=farm.tz).to_pydatetime()
    th = agro.thermal(frames, farm.kind, gdd_since=since_dt)
    if th is None:
        return
    m = st.columns(4)
    m[0].metric(t("agro.gdd", lang, date=since.isoformat(), base=13), f"{th.gdd:.1f} °C·d")
    m[1].metric(t("agro.chill", lang), f"{th.chill_h:.0f} h")
    m[2].metric(t("agro.frost", lang, limit=th.frost_limit), f"{th.frost_h:.1f} h")
    m[3].metric(
        t("agro.disease", lang),
        t(f"agro.risk.{th.disease_risk}", lang),
        help=t("agro.wet_hours", lang, hours=f"{th.wet_hours:.1f}", temp=f"{th.wet_temp or 0:.1f}"),
    )


def _agro_pig(farm: Farm, frames: dict[str, pd.DataFrame], lang: Lang, end: datetime) -> None:
    thi = agro.barn_thi(frames)
    if thi is not None:
        bands = [(lo, t(f"thi.{name}", lang)) for name, lo in THI_BANDS if lo > -1e9]
        fig = charts.timeseries(thi.frame, "thi", farm.tz, lang, title=t("agro.thi", lang), limits=bands)
        st.plotly_chart(fig, key="agro_thi")
        st.caption(" · ".join(f"{n}: {t('thi.' + b, lang)}" for n, b in sorted(thi.current.items())))
    st.markdown(f"**{t('agro.gases', lang)}**")
    cols = st.columns(3)
    for col, (metric, limit) in zip(cols, agro.GAS_LIMITS.items(), strict=True):
        f = frames.get(metric)
        if f is None or f.empty:
            col.caption(f"{metric_label(metric, lang)}: {t('empty.range', lang)}")
            continue
        unit = metric_label(metric, lang).rsplit("(", 1)[-1].rstrip(")")
        fig = charts.timeseries(
            f,
            metric,
            farm.tz,
            lang,
            limits=[(limit, t("agro.limit", lang, limit=limit, unit=unit))],
            height=260,
            legend=False,
        )
        col.plotly_chart(fig, key=f"agro_{metric}")
    water = agro.pen_water(frames, ui.now_local(farm.tz).date())
    if water is not None:
        st.markdown(f"**{t('agro.water', lang)}**")
        for row in water.itertuples():
            text = (
                t("agro.water_change", lang, pct=f"{100 * row.change:+.0f}")
                if row.change is not None and pd.notna(row.change)
                else t("agro.water_nobase", lang)
            )
            (st.warning if row.alert else st.caption)(
                f"{row.node_id} · {row.day}: {row.litres_day:.0f} L · {text}"
            )


def _agro_pond(farm: Farm, frames: dict[str, pd.DataFrame], lang: Lang, end: datetime) -> None:
    do = frames.get("do_mgl")
    if do is not None and not do.empty:
        fig = charts.timeseries(
            do, "do_mgl", farm.tz, lang, title=t("agro.do", lang), limits=[(DO_LOW_MGL, f"{DO_LOW_MGL} mg/L")]
        )
        st.plotly_chart(fig, key="agro_do")
        for fc in agro.dawn_do(frames, end, farm.tz):
            if fc.forecast is None:
                continue
            text = t("agro.do_forecast", lang, value=f"{fc.forecast:.2f}")
            if fc.low:
                st.warning(f"{fc.node_id}: {text} — {t('agro.do_low', lang, limit=DO_LOW_MGL)}")
            else:
                st.caption(f"{fc.node_id}: {text}")
    st.markdown(f"**{t('agro.ph_wt', lang)}**")
    cols = st.columns(2)
    for col, metric in zip(cols, ("ph", "water_t"), strict=True):
        f = frames.get(metric)
        if f is None or f.empty:
            col.caption(f"{metric_label(metric, lang)}: {t('empty.range', lang)}")
            continue
        fig = charts.timeseries(f, metric, farm.tz, lang, height=260, legend=False)
        col.plotly_chart(fig, key=f"agro_{metric}")


def page() -> None:
    lang = ui.current_lang()
    farm = _choose_farm(lang)
    if farm is None:
        return
    st.title(f"{farm.name}")
    st.caption(f"{kind_label(farm.kind, lang)} · {farm.id} · {t('farm.local_time', lang, tz=farm.tz)}")
    nodes = list_nodes(farm.id)
    _latest(farm, lang, ui.config().dashboard_offline_after_s)
    start, end = _range(lang, farm.tz)
    _series(farm, nodes, lang, start, end)
    _agro(farm, lang, start, end)
    _health(farm, lang, start, end)
    _sky(farm, lang, start, end)
