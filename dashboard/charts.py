"""Figures (plotly) built from the frames of ``dashboard.data``: pure functions, no Streamlit.

Times are plotted as the farm's wall-clock time (tz-naive local), so every browser shows the
farm's hours whatever its own time zone. A bucket without readings is a null, which plotly draws as
a break in the line (``connectgaps`` off): gaps stay gaps.

Figures are assembled as plain plotly.js specs and wrapped without plotly's per-property
validation (``_validate=False``): the validating graph objects cost ~0.1 s a chart, most of a warm
page's time.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from analytics.qc import FAIL, SUSPECT
from dashboard.i18n import Lang, metric_label, t
from dashboard.state import COLOURS

PALETTE = ("#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#17becf", "#7f7f7f", "#bcbd22", "#e377c2")
QC_MARK = {int(FAIL): ("#d7263d", "x"), int(SUSPECT): ("#f28e2b", "circle-open")}
ANOMALY_COLOUR = "#f28e2b"
TICKS = "%m-%d\n%H:%M"  # numeric dates: the same in Chinese and English
FONT = "WenQuanYi Micro Hei, Noto Sans CJK SC, Microsoft YaHei, sans-serif"


def _layout(title: str, height: int = 320, hovermode: str = "x unified") -> dict[str, Any]:
    return {
        "title": {"text": title},
        "margin": {"l": 10, "r": 10, "t": 30, "b": 10},
        "height": height,
        "legend": {"orientation": "h", "y": -0.15},
        "hovermode": hovermode,
        "font": {"family": FONT},
        "paper_bgcolor": "white",
        "plot_bgcolor": "white",
        "xaxis": {"tickformat": TICKS, "hoverformat": "%Y-%m-%d %H:%M", "gridcolor": "#eceff1"},
        "yaxis": {"gridcolor": "#eceff1", "zeroline": False},
        "shapes": [],
        "annotations": [],
    }


def figure(data: list[dict[str, Any]], layout: dict[str, Any]) -> go.Figure:
    return go.Figure({"data": data, "layout": layout}, _validate=False)


def local_naive(times: pd.Series | Sequence[datetime], tz: str) -> pd.Series:
    s = pd.Series(pd.to_datetime(list(times) if not isinstance(times, pd.Series) else times, utc=True))
    return s.dt.tz_convert(tz).dt.tz_localize(None)


def _x(times: pd.Series, tz: str) -> np.ndarray[Any, Any]:
    """Wall-clock datetime64 (no zone: plotly must not shift them). Arrays, not lists: a figure
    deep-copies its data, and copying an array is one memcpy."""
    return np.asarray(local_naive(times, tz).to_numpy(dtype="datetime64[ms]"))


def _y(col: pd.Series) -> np.ndarray[Any, Any]:
    """float64 with NaN for a missing bucket (plotly.js breaks the line there)."""
    return np.asarray(col.to_numpy(dtype=np.float64, na_value=np.nan))


def timeseries(
    frame: pd.DataFrame,
    metric: str,
    tz: str,
    lang: Lang,
    *,
    alert_periods: Sequence[tuple[datetime, datetime | None]] = (),
    anomalies: pd.DataFrame | None = None,
    limits: Sequence[tuple[float, str]] = (),
    title: str | None = None,
    now: datetime | None = None,
    height: int = 320,
    legend: bool = True,
) -> go.Figure:
    """One line per node (``mean`` column; min and max go into the export), QC-failed /
    suspect buckets marked, anomalies marked, alert periods shaded, limit lines. (A filled min-max
    band cannot follow a gap: plotly closes the fill polygon across it.)"""
    data: list[dict[str, Any]] = []
    for i, (node, df) in enumerate(frame.groupby("node_id", sort=True)):
        x = _x(df["time"], tz)
        colour = PALETTE[i % len(PALETTE)]
        y = _y(df["mean"])
        data.append(
            {
                "type": "scatter", "x": x, "y": y, "mode": "lines", "name": str(node),
                "line": {"color": colour, "width": 1.6}, "connectgaps": False,
            }
        )  # fmt: skip
        flags = df["qc"].to_numpy()
        for flag, (colour_q, symbol) in QC_MARK.items():
            bad = np.flatnonzero(flags == flag)
            if bad.size:
                data.append(
                    {
                        "type": "scatter", "mode": "markers",
                        "x": x[bad], "y": y[bad],
                        "name": f"{node} QC {t('qc.fail' if flag == FAIL else 'qc.suspect', lang)}",
                        "marker": {"color": colour_q, "symbol": symbol, "size": 9},
                    }
                )  # fmt: skip
    if anomalies is not None and not anomalies.empty:
        data.append(
            {
                "type": "scatter", "mode": "markers", "x": _x(anomalies["time"], tz),
                "y": _y(anomalies["value"]), "name": "anomaly" if lang == "en" else "异常",
                "marker": {"color": ANOMALY_COLOUR, "size": 8, "symbol": "diamond"},
            }
        )  # fmt: skip
    layout = _layout(title or metric_label(metric, lang), height)
    layout["showlegend"] = legend
    end_default = now or datetime.now().astimezone()
    for start, end in alert_periods:
        x0 = local_naive([start], tz).iloc[0].isoformat()
        x1 = local_naive([end or end_default], tz).iloc[0].isoformat()
        layout["shapes"].append(
            {
                "type": "rect", "xref": "x", "yref": "paper", "x0": x0, "x1": x1, "y0": 0, "y1": 1,
                "fillcolor": COLOURS["alert"], "opacity": 0.12, "line": {"width": 0}, "layer": "below",
            }
        )  # fmt: skip
    for value, label in limits:
        layout["shapes"].append(
            {
                "type": "line", "xref": "paper", "yref": "y", "x0": 0, "x1": 1, "y0": value, "y1": value,
                "line": {"color": COLOURS["alert"], "dash": "dash", "width": 1.5},
            }
        )  # fmt: skip
        layout["annotations"].append(
            {
                "xref": "paper", "yref": "y", "x": 1, "y": value, "text": label, "showarrow": False,
                "xanchor": "right", "yanchor": "bottom", "font": {"size": 11, "color": COLOURS["alert"]},
            }
        )  # fmt: skip
    return figure(data, layout)


def bars(x: Sequence[Any], y: Sequence[float | None], title: str, *, colour: str = PALETTE[0]) -> go.Figure:
    data = [{"type": "bar", "x": [str(v) for v in x], "y": list(y), "marker": {"color": colour}}]
    layout = _layout(title, hovermode="x")
    layout["xaxis"] = {"type": "date", "tickformat": "%m-%d"}
    return figure(data, layout)


def lines(
    x: Sequence[Any], series: dict[str, Sequence[float | None]], title: str, *, height: int = 320
) -> go.Figure:
    data = [
        {
            "type": "scatter", "x": [str(v) for v in x], "y": list(y), "mode": "lines", "name": name,
            "line": {"color": PALETTE[i % len(PALETTE)]},
        }
        for i, (name, y) in enumerate(series.items())
    ]  # fmt: skip
    layout = _layout(title, height)
    layout["xaxis"] = {"type": "date", "tickformat": "%m-%d"}
    return figure(data, layout)


def index_beside_soil(
    index: dict[str, pd.DataFrame], soil: pd.DataFrame | None, tz: str, lang: Lang, title: str
) -> go.Figure:
    """Per-block index means (markers and lines, left axis) beside the farm's daily soil moisture
    (right axis): imagery every few days, the ground every day."""
    data: list[dict[str, Any]] = []
    i = 0
    for metric, frame in sorted(index.items()):
        for node, df in frame.groupby("node_id", sort=True):
            have = df["count"].to_numpy() > 0
            data.append(
                {
                    "type": "scatter", "mode": "lines+markers", "x": _x(df["time"], tz)[have],
                    "y": _y(df["mean"])[have], "name": f"{metric_label(metric, lang, unit=False)} · {node}",
                    "line": {"color": PALETTE[i % len(PALETTE)]}, "yaxis": "y",
                }
            )  # fmt: skip
            i += 1
    layout = _layout(title)
    if soil is not None and not soil.empty:
        mean = soil.groupby("time")["mean"].mean()
        data.append(
            {
                "type": "scatter", "mode": "lines", "x": _x(pd.Series(mean.index), tz), "y": _y(mean),
                "name": metric_label("soil_vwc", lang), "line": {"color": "#8c564b", "dash": "dot"},
                "yaxis": "y2",
            }
        )  # fmt: skip
        layout["yaxis2"] = {"overlaying": "y", "side": "right", "showgrid": False, "title": {"text": "%"}}
    layout["xaxis"]["tickformat"] = "%m-%d"
    return figure(data, layout)
