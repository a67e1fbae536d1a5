"""Agronomic panels' numbers from hourly buckets, through ``analytics.agro`` (pure, no Streamlit).

Inputs are the frames of :func:`dashboard.data.hourly` (node_id, time, mean, min, max, count).
Weather-like metrics are averaged over the farm's nodes per hour; barn and pen metrics stay per
node (a pig farm's nodes are its barns and pens).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from analytics.agro import (
    DISEASE_RULES,
    THI_BANDS,
    chill_hours,
    dawn_do_forecast,
    degree_days,
    et0_fao56_daily,
    frost_hours,
    thi_band,
    thi_nrc1971,
    water_drop,
    wet_periods,
)
from analytics.agro.config import DO_LOW_MGL, FROST_CITRUS_FRUIT_C, FROST_TEA_BUDS_C, GDD_BASE_CITRUS_C

Frames = dict[str, pd.DataFrame]
#: Exposure limits in pig-house air (ppm).
GAS_LIMITS: dict[str, float] = {"nh3_ppm": 25.0, "co2_ppm": 5000.0, "h2s_ppm": 10.0}
W_M2_TO_MJ_DAY = 0.0864


def farm_hourly(frames: Frames, metric: str, how: str = "mean") -> pd.Series:
    """Hourly series of ``metric`` over the farm's nodes (index: bucket start, farm-local)."""
    df = frames.get(metric)
    if df is None or df.empty:
        return pd.Series(dtype="float64")
    col = df[how].astype("float64")
    return col.groupby(df["time"]).mean().dropna()


def _unix(index: pd.Index) -> np.ndarray:
    return np.array([t.timestamp() for t in index], dtype=np.float64) + 1800.0  # bucket middle


@dataclass(frozen=True)
class WaterBalance:
    days: list[date]
    et0_mm: list[float]
    rain_mm: list[float]
    cumulative_mm: list[float]


def water_balance(frames: Frames, *, lat: float, elevation_m: float) -> WaterBalance | None:
    """Daily FAO-56 ET0 from the farm's hourly air temperature (humidity, wind, radiation when
    measured) and the cumulative balance rain − ET0 over the range."""
    t = frames.get("air_t")
    if t is None or t.empty:
        return None
    day = t["time"].dt.date
    tmax = t["max"].astype("float64").groupby(day).max()
    tmin = t["min"].astype("float64").groupby(day).min()
    days = list(tmax.index)

    def daily(metric: str, col: str, agg: str) -> np.ndarray | None:
        f = frames.get(metric)
        if f is None or f.empty:
            return None
        s = f[col].astype("float64").groupby(f["time"].dt.date).agg(agg)
        return np.asarray(s.reindex(days).to_numpy(), dtype=np.float64)

    rh_max = daily("air_rh", "max", "max")
    rh_min = daily("air_rh", "min", "min")
    u2 = daily("wind_ms", "mean", "mean")
    solar = daily("solar_wm2", "mean", "mean")
    rain = daily("rain_mm", "mean", "sum")  # a summed metric: "mean" holds the bucket's sum
    doy = np.array([d.timetuple().tm_yday for d in days], dtype=np.float64)
    et0 = et0_fao56_daily(
        tmax=tmax.to_numpy(),
        tmin=tmin.to_numpy(),
        rh_max=rh_max,
        rh_min=rh_min,
        u2=u2,
        rs=None if solar is None else solar * W_M2_TO_MJ_DAY,
        lat_deg=lat,
        elevation_m=elevation_m,
        doy=doy,
    )
    rain_v = np.zeros(len(days)) if rain is None else np.nan_to_num(rain)
    et0_v = np.nan_to_num(et0)
    return WaterBalance(
        days=days,
        et0_mm=[float(x) for x in et0],
        rain_mm=[float(x) for x in rain_v],
        cumulative_mm=[float(x) for x in np.cumsum(rain_v - et0_v)],
    )


@dataclass(frozen=True)
class Thermal:
    gdd: float
    chill_h: float
    frost_h: float
    frost_limit: float
    disease_risk: int  # 0 none .. 3 high, the highest reached in the range
    wet_hours: float  # of the latest wet period
    wet_temp: float | None


def thermal(frames: Frames, kind: str, *, gdd_since: datetime) -> Thermal | None:
    air = farm_hourly(frames, "air_t")
    if air.empty:
        return None
    t = _unix(air.index)
    v = air.to_numpy()
    since = t >= gdd_since.timestamp()
    gdd = float(degree_days(t[since], v[since], base=GDD_BASE_CITRUS_C).sum()) if since.any() else 0.0
    limit = FROST_TEA_BUDS_C if kind == "tea_garden" else FROST_CITRUS_FRUIT_C
    risk, wet_h, wet_t = 0, 0.0, None
    wet = farm_hourly(frames, "leaf_wet")
    if not wet.empty:
        both = pd.concat([wet.rename("w"), air.rename("t")], axis=1).dropna()
        if len(both) >= 2:
            rules = DISEASE_RULES["tea_blister_blight" if kind == "tea_garden" else "citrus_fungal"]
            wp = wet_periods(_unix(both.index), both.w.to_numpy(), both.t.to_numpy(), rules)
            risk = int(np.max(wp.risk))
            wet_h = float(wp.wet_hours[-1])
            wet_t = None if np.isnan(wp.mean_temp[-1]) else float(wp.mean_temp[-1])
    return Thermal(
        gdd=gdd,
        chill_h=float(chill_hours(t, v).sum()),
        frost_h=float(frost_hours(t, v, limit=limit).sum()),
        frost_limit=limit,
        disease_risk=risk,
        wet_hours=wet_h,
        wet_temp=wet_t,
    )


@dataclass(frozen=True)
class BarnThi:
    frame: pd.DataFrame  # node_id, time, mean (= THI)
    current: dict[str, str]  # node -> band name of its newest THI


def barn_thi(frames: Frames) -> BarnThi | None:
    t, rh = frames.get("air_t"), frames.get("air_rh")
    if t is None or rh is None or t.empty or rh.empty:
        return None
    m = t[["node_id", "time", "mean"]].merge(
        rh[["node_id", "time", "mean"]], on=["node_id", "time"], suffixes=("_t", "_rh")
    )
    m = m.dropna()
    if m.empty:
        return None
    thi = thi_nrc1971(m.mean_t.to_numpy(dtype=np.float64), m.mean_rh.to_numpy(dtype=np.float64))
    out = pd.DataFrame({"node_id": m.node_id, "time": m.time, "mean": thi})
    out["min"], out["max"], out["count"], out["qc"] = out["mean"], out["mean"], 1, 1
    current = {}
    for node, g in out.groupby("node_id"):
        band = int(thi_band(g["mean"].iloc[-1:].to_numpy())[0])
        current[str(node)] = THI_BANDS[band][0] if band >= 0 else "normal"
    return BarnThi(frame=out.sort_values(["node_id", "time"]), current=current)


def pen_water(frames: Frames, today: date) -> pd.DataFrame | None:
    """Per pen (node): daily litres and the last full day's change against its previous days
    (today is left out: a day still running would always look like a drop)."""
    w = frames.get("water_l")
    if w is None or w.empty:
        return None
    rows = []
    for node, g in w.groupby("node_id"):
        day = g["time"].dt.date
        keep = (day < today).to_numpy()
        daily = g["mean"].astype("float64")[keep].groupby(day[keep]).sum(min_count=1)
        if daily.empty:
            continue
        change, alert = water_drop(daily.to_numpy())
        rows.append(
            {
                "node_id": node,
                "day": daily.index[-1],
                "litres_day": float(daily.iloc[-1]),
                "change": None if np.isnan(change[-1]) else float(change[-1]),
                "alert": bool(alert[-1]),
                "days": list(daily.index),
                "litres": [float(x) for x in daily],
            }
        )
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class DawnDo:
    node_id: str
    forecast: float | None
    hours_below: float | None
    low: bool


def dawn_do(frames: Frames, now: datetime, tz: str) -> list[DawnDo]:
    """Dawn dissolved-oxygen forecast per pond node from tonight's readings (18:00 to 06:00 local).

    Before 18:00 the night that ended this morning is used, so the panel compares with what happened.
    """
    do = frames.get("do_mgl")
    if do is None or do.empty:
        return []
    local = now.astimezone(ZoneInfo(tz))
    evening = datetime.combine(local.date(), time(18), tzinfo=ZoneInfo(tz))
    if local < evening:
        evening -= timedelta(days=1)
    sunrise = evening + timedelta(hours=12)
    out = []
    for node, g in do.groupby("node_id"):
        g = g.dropna(subset=["mean"])
        if g.empty:
            continue
        fc = dawn_do_forecast(
            _unix(pd.Index(g["time"])),
            g["mean"].to_numpy(dtype=np.float64),
            evening.timestamp(),
            sunrise.timestamp(),
        )
        value = float(fc.dawn_do)
        hours = float(fc.hours_below)
        ok = not np.isnan(value)
        out.append(
            DawnDo(
                node_id=str(node),
                forecast=value if ok else None,
                hours_below=hours if ok else None,
                low=ok and value < DO_LOW_MGL,
            )
        )
    return out
