"""Figures (plotly) built from the frames of ``dashboard.data``: pure functions, no Streamlit.

Times are plotted as the farm's wall-clock time (tz-naive local), so every browser shows the
farm's hours whatever its own time zone. A bucket without readings is a null, which plotly draws as
a break in the line (``connectgaps`` off): gaps stay gaps.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from analytics.qc import FAIL, SUSPECT
from dashboard.i18n import Lang, metric_label, t
from dashboard.state import COLOURS

PALETTE = ("#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#17becf", "#7f7f7f", "#bcbd22", "#e377c2")
QC_MARK = {FAIL: ("#d7263d", "x"), SUSPECT: ("#f28e2b", "circle-open")}
ANOMALY_COLOUR = "#f28e2b"
TICKS = "%m-%d\n%H:%M"  # numeric dates: the same in Chinese and English
_LAYOUT: dict[str, Any] = {
    "margin": {"l": 10, "r": 10, "t": 30, "b": 10},
    "height": 320,
    "legend": {"orientation": "h", "y": -0.15},
    "hovermode": "x unified",
    "template": "plotly_white",
    "font": {"family": "WenQuanYi Micro Hei, Noto Sans CJK SC, sans-serif"},
}


def _rgba(hex_colour: str, alpha: float) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def local_naive(times: pd.Series | Sequence[datetime], tz: str) -> pd.Series:
    s = pd.Series(pd.to_datetime(list(times) if not isinstance(times, pd.Series) else times, utc=True))
    return s.dt.tz_convert(tz).dt.tz_localize(None)


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
) -> go.Figure:
    """One line per node (``mean`` column), a min-max band when buckets hold several readings,
    QC-failed / suspect buckets marked, anomalies marked, alert periods shaded, limit lines."""
    fig = go.Figure()
    for i, (node, df) in enumerate(frame.groupby("node_id", sort=True)):
        x = local_naive(df["time"], tz)
        colour = PALETTE[i % len(PALETTE)]
        y = df["mean"].astype("float64")
        if (df["count"] > 1).any():
            # min-max band: the max line invisible, the min line filled up to it ("tonexty").
            for col, fill in (("max", None), ("min", "tonexty")):
                fig.add_trace(
                    go.Scatter(
                        x=x, y=df[col].astype("float64"), mode="lines", line={"width": 0, "color": colour},
                        fill=fill, fillcolor=_rgba(colour, 0.15), hoverinfo="skip", showlegend=False,
                    )
                )  # fmt: skip
        fig.add_trace(
            go.Scatter(x=x, y=y, mode="lines", name=str(node), line={"color": colour, "width": 1.6})
        )
        for flag, (colour_q, symbol) in QC_MARK.items():
            bad = df["qc"] == flag
            if bad.any():
                fig.add_trace(
                    go.Scatter(
                        x=x[bad.to_numpy()],
                        y=y[bad],
                        mode="markers",
                        name=f"{node} QC {t('qc.fail' if flag == FAIL else 'qc.suspect', lang)}",
                        marker={"color": colour_q, "symbol": symbol, "size": 9},
                    )
                )
    if anomalies is not None and not anomalies.empty:
        fig.add_trace(
            go.Scatter(
                x=local_naive(anomalies["time"], tz),
                y=anomalies["value"],
                mode="markers",
                name="anomaly" if lang == "en" else "异常",
                marker={"color": ANOMALY_COLOUR, "size": 8, "symbol": "diamond"},
            )
        )
    end_default = now or datetime.now().astimezone()
    for start, end in alert_periods:
        x0 = local_naive([start], tz).iloc[0]
        x1 = local_naive([end or end_default], tz).iloc[0]
        fig.add_vrect(x0=x0, x1=x1, fillcolor=COLOURS["alert"], opacity=0.12, line_width=0)
    for value, label in limits:
        fig.add_hline(y=value, line_dash="dash", line_color=COLOURS["alert"], annotation_text=label)
    fig.update_layout(**_LAYOUT, title=title or metric_label(metric, lang))
    fig.update_xaxes(title=None, tickformat=TICKS, hoverformat="%Y-%m-%d %H:%M")
    fig.update_yaxes(title=None)
    return fig


def bars(x: Sequence[Any], y: Sequence[float | None], title: str, *, colour: str = PALETTE[0]) -> go.Figure:
    fig = go.Figure(go.Bar(x=list(x), y=list(y), marker_color=colour))
    fig.update_layout(**{**_LAYOUT, "hovermode": "x"}, title=title)
    return fig


def lines(
    x: Sequence[Any], series: dict[str, Sequence[float | None]], title: str, *, height: int = 320
) -> go.Figure:
    fig = go.Figure()
    for i, (name, y) in enumerate(series.items()):
        fig.add_trace(
            go.Scatter(x=list(x), y=list(y), mode="lines", name=name, line={"color": PALETTE[i % 8]})
        )
    fig.update_layout(**{**_LAYOUT, "height": height}, title=title)
    return fig
