"""The overview map: farms, nodes, gateways and field blocks, coloured by state.

With no tile URL configured the background is blank ("white-bg" needs no server at all) and farm
boundaries and field blocks are drawn as outlines, so the map works on an offline district network.
With ``AGRI_DASHBOARD_TILE_URL`` (Tianditu, an in-house tile server) that raster goes underneath.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from analytics.imagery.colour import DISPLAY_RANGE, colormap, ramp_stops
from dashboard.data import BlockShape
from dashboard.i18n import Lang, fmt_time, t
from dashboard.state import COLOURS, STATES


def _extent(lats: Sequence[float], lons: Sequence[float]) -> tuple[dict[str, float], float]:
    """Centre and a zoom level that fits every point (Web Mercator, ~800 px wide map)."""
    if not lats:
        return {"lat": 30.8, "lon": 108.4}, 8.0  # Wanzhou district
    la0, la1, lo0, lo1 = min(lats), max(lats), min(lons), max(lons)
    span = max(la1 - la0, (lo1 - lo0) * 0.8, 0.002)
    zoom = max(1.0, min(16.0, math.log2(360.0 / span) - 0.6))
    return {"lat": (la0 + la1) / 2, "lon": (lo0 + lo1) / 2}, zoom


def _polygons(geo: Mapping[str, Any]) -> list[list[list[float]]]:
    """Outer rings of a GeoJSON Polygon / MultiPolygon / Feature / FeatureCollection."""
    kind = geo.get("type")
    if kind == "FeatureCollection":
        return [r for f in geo.get("features", []) for r in _polygons(f)]
    if kind == "Feature":
        return _polygons(geo.get("geometry") or {})
    if kind == "Polygon":
        return [geo["coordinates"][0]] if geo.get("coordinates") else []
    if kind == "MultiPolygon":
        return [p[0] for p in geo.get("coordinates", []) if p]
    return []


def block_colour(value: float | None, vmin: float, vmax: float, alpha: float) -> str:
    """A block's fill: its value on the index ramp (light green when it has none)."""
    if value is None:
        return "rgba(46,157,91,0.25)"
    r, g, b, _ = (int(x) for x in colormap([value], vmin, vmax)[0])
    return f"rgba({r},{g},{b},{alpha})"


def coloured_blocks(
    blocks: Sequence[BlockShape], tz: str | None, *, over_image: bool = False, index: str = "ndvi"
) -> list[dict[str, Any]]:
    """Blocks as ``overview_map`` draws them: filled in the colour of their newest mean index (over
    an image only faintly, with a dark outline: the image shows the index pixel by pixel), named
    with the value and its date (in ``tz``, else each block's own UTC time)."""
    vmin, vmax = DISPLAY_RANGE[index]
    out = []
    for b in blocks:
        label = b.name
        if b.value is not None:
            label += f" · {index.upper()} {b.value:.2f}"
            if b.time is not None:
                label += f" ({fmt_time(b.time, tz or 'UTC', short=True)})"
        colour = block_colour(b.value, vmin, vmax, 0.15 if over_image else 0.6)
        out.append(
            {
                "geometry": b.geometry,
                "name": label,
                "colour": colour,
                "line": "#333333" if over_image else None,
            }
        )
    return out


def overview_map(
    farms: pd.DataFrame,
    nodes: pd.DataFrame,
    gateways: pd.DataFrame,
    lang: Lang,
    *,
    boundaries: Mapping[str, Mapping[str, Any]] | None = None,
    blocks: Sequence[Mapping[str, Any]] = (),
    tile_url: str | None = None,
    tile_attribution: str = "",
    height: int = 480,
    image: tuple[bytes, tuple[float, float, float, float]] | None = None,
    colour_bar: tuple[float, float, str] | None = None,
) -> go.Figure:
    """``image``: a PNG (a colour-mapped index) and its WGS 84 bounds (west, south, east, north),
    laid on the map under the block outlines and points; ``colour_bar``: (value at the ramp's
    start, at its end, title) of the index ramp (``analytics.imagery.colour``), for the legend."""
    traces: list[dict[str, Any]] = []
    lats: list[float] = []
    lons: list[float] = []
    if image is not None:
        w, s, e, n = image[1]
        lats += [s, n]
        lons += [w, e]
    # Outlines first so the points sit on top of them.
    for farm_id, geo in (boundaries or {}).items():
        for ring in _polygons(geo):
            xs = [p[0] for p in ring]
            ys = [p[1] for p in ring]
            lats += ys
            lons += xs
            traces.append(
                dict(
                    type="scattermap",
                    lon=xs, lat=ys, mode="lines", line={"color": "#4a6fa5", "width": 2},
                    name=str(farm_id), hoverinfo="name", showlegend=False,
                )
            )  # fmt: skip
    for block in blocks:
        for ring in _polygons(block.get("geometry") or {}):
            traces.append(
                dict(
                    type="scattermap",
                    lon=[p[0] for p in ring], lat=[p[1] for p in ring], mode="lines", fill="toself",
                    fillcolor=block.get("colour", "rgba(46,157,91,0.25)"),
                    line={"color": block.get("line") or "#2e9d5b", "width": 2 if block.get("line") else 1},
                    name=str(block.get("name", "")), hoverinfo="name", showlegend=False,
                )
            )  # fmt: skip
    located = nodes.dropna(subset=["lat", "lon"]) if not nodes.empty else nodes
    for state in STATES:
        sub = located[located.state == state] if not located.empty else located
        if sub.empty:
            continue
        lats += list(sub.lat)
        lons += list(sub.lon)
        traces.append(
            dict(
                type="scattermap",
                lat=list(sub.lat), lon=list(sub.lon), mode="markers",
                marker={"size": 11, "color": COLOURS[state]},
                name=f"{t('ov.nodes', lang)}: {t('state.' + state, lang)}",
                text=[f"{f}/{n}" for f, n in zip(sub.farm_id, sub.node_id, strict=True)],
                hovertemplate="%{text}<extra>" + t("state." + state, lang) + "</extra>",
            )
        )  # fmt: skip
    # Farms without located nodes are drawn at the farm's own position, large and in its state colour.
    if not farms.empty:
        fl = farms.dropna(subset=["lat", "lon"])
        if not fl.empty:
            lats += list(fl.lat)
            lons += list(fl.lon)
            traces.append(
                dict(
                    type="scattermap",
                    lat=list(fl.lat), lon=list(fl.lon), mode="markers",
                    marker={"size": 22, "color": [COLOURS[s] for s in fl.state], "opacity": 0.45},
                    name=t("ov.farms", lang), text=list(fl.name),
                    hovertemplate="%{text}<extra></extra>",
                )
            )  # fmt: skip
    if not gateways.empty:
        gl = gateways.dropna(subset=["lat", "lon"])
        if not gl.empty:
            traces.append(
                dict(
                    type="scattermap",
                    lat=list(gl.lat), lon=list(gl.lon), mode="markers",
                    marker={"size": 13, "symbol": "circle", "color": [
                        COLOURS["ok"] if u == "up" else COLOURS["offline"] for u in gl.uplink
                    ]},
                    name=t("col.gateway", lang), text=list(gl.gateway_id),
                    hovertemplate="%{text}<extra></extra>",
                )
            )  # fmt: skip
    centre, zoom = _extent(lats, lons)
    layers: list[dict[str, Any]] = []
    if tile_url:
        layers.append(
            {
                "below": "traces",
                "sourcetype": "raster",
                "sourceattribution": tile_attribution,
                "source": [tile_url],
            }
        )
    if image is not None:
        w, s, e, n = image[1]
        layers.append(
            {
                "below": "traces",
                "sourcetype": "image",
                "source": "data:image/png;base64," + base64.b64encode(image[0]).decode("ascii"),
                "coordinates": [[w, n], [e, n], [e, s], [w, s]],
                "opacity": 0.9,
            }
        )
    if colour_bar is not None:
        vmin, vmax, title = colour_bar
        traces.append(
            dict(
                type="scattermap",
                lat=[centre["lat"]], lon=[centre["lon"]], mode="markers", hoverinfo="skip", showlegend=False,
                marker={
                    "size": 1, "opacity": 0, "color": [vmin], "cmin": vmin, "cmax": vmax,
                    "colorscale": [list(p) for p in ramp_stops()], "showscale": True,
                    "colorbar": {"title": {"text": title}, "thickness": 12, "len": 0.7, "x": 1.0},
                },
            )
        )  # fmt: skip
    layout = {
        "map": {"style": "white-bg", "center": centre, "zoom": zoom, "layers": layers},
        "margin": {"l": 0, "r": 0, "t": 0, "b": 0},
        "height": height,
        "legend": {"orientation": "h", "y": 0.0, "bgcolor": "rgba(255,255,255,0.7)"},
        "paper_bgcolor": "#f4f6f8",
    }
    return go.Figure({"data": traces, "layout": layout}, _validate=False)
