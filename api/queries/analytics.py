"""Analytics on demand: QC flags and anomaly scores of a series, agronomic indices of a farm.

QC (kernel.qc, IOOS QARTOD flags) and anomaly scores (analytics.anomaly) run over the raw
readings of the range plus a warm-up before it, so the first points are judged with history.
Farm indices per local day come from the daily and hourly rollups (several nodes of a farm are
averaged) and, for durations (chill, frost, wet hours), from the raw readings; days are the
farm's local days, also on daylight-saving days.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import psycopg
from numpy.typing import NDArray
from pydantic import BaseModel, Field

from analytics import agro
from analytics.agro import config as agro_config
from analytics.anomaly import score_series
from analytics.qc import FLAG_NAMES, history_needed_s
from api.queries.errors import InvalidArgument
from api.queries.models import SeriesInfo
from api.queries.readings import bucket_starts, buckets, check_range, find_series, local_midnight
from api.queries.registry import get_farm
from kernel.qc import qc_metric, thresholds_for

Conn = psycopg.Connection[Any]

MAX_POINTS = 500_000
ANOMALY_WARMUP = timedelta(days=7)
#: readings one anomaly request scores, warm-up included: the detector advances one series by
#: one numpy step per reading (2,000-4,500 readings/s on the 2-core VM), so this keeps a request
#: under about 20-50 s; 30 days of 1-minute data with their warm-up are 53,280 readings
ANOMALY_MAX_POINTS = 100_000
MAX_DAYS = 400
KIND_CROP = {"orchard": "citrus_70", "tea_garden": "tea"}
KIND_DISEASE = {"orchard": "citrus_fungal", "tea_garden": "tea_blister_blight"}
KIND_FROST = {"orchard": agro_config.FROST_CITRUS_FRUIT_C, "tea_garden": agro_config.FROST_TEA_BUDS_C}


class QcSeries(BaseModel):
    series: SeriesInfo
    time: list[datetime]
    value: list[float]
    flag: list[int] = Field(
        description="aggregate flag: 1 pass, 2 not evaluated, 3 suspect, 4 fail, 9 missing"
    )
    tests: dict[str, list[int]]
    flag_names: dict[int, str]


class AnomalySeries(BaseModel):
    series: SeriesInfo
    time: list[datetime]
    value: list[float]
    score: list[float | None] = Field(description="anomaly score in [0, 1], causal")


class FarmIndices(BaseModel):
    """Per local day of the farm; null where the inputs are missing."""

    farm: str
    tz: str
    crop: str | None
    day: list[date]
    tmin_c: list[float | None]
    tmax_c: list[float | None]
    rain_mm: list[float | None]
    et0_mm: list[float | None]
    water_depletion_mm: list[float | None]
    irrigation_mm: list[float | None]
    gdd: list[float | None]
    chill_hours: list[float | None]
    frost_hours: list[float | None]
    thi_max: list[float | None]
    thi_band: list[str | None]
    wet_hours: list[float | None]
    disease_risk: list[int | None]
    dawn_do_mgl: list[float | None]
    do_hours_below: list[float | None]
    notes: list[str] = []


def _points(
    conn: Conn,
    s: SeriesInfo,
    start: datetime,
    end: datetime,
    limit: int = MAX_POINTS,
    what: str = "in the range",
    hint: str = "",
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    n = conn.execute(
        "SELECT count(*) FROM readings WHERE series_id = %s AND time >= %s AND time < %s",
        (s.series_id, start, end),
    ).fetchone()
    if n and int(n[0]) > limit:
        raise InvalidArgument(f"{n[0]} readings {what}; at most {limit}{hint}", field="end")
    rows = conn.execute(
        "SELECT extract(epoch FROM time)::float8, value FROM readings WHERE series_id = %s AND time >= %s"
        " AND time < %s ORDER BY time",
        (s.series_id, start, end),
    ).fetchall()
    if not rows:
        return np.zeros(0), np.zeros(0)
    arr = np.asarray(rows, dtype=np.float64)
    return arr[:, 0], arr[:, 1]


def _times(t: NDArray[np.float64], tz: ZoneInfo) -> list[datetime]:
    return [datetime.fromtimestamp(float(x), tz) for x in t]


def qc(conn: Conn, s: SeriesInfo, start: datetime, end: datetime) -> QcSeries:
    check_range(start, end)
    th = thresholds_for(s.metric)
    warm = timedelta(seconds=history_needed_s(th))
    t, v = _points(conn, s, start - warm, end)
    tz = ZoneInfo(s.tz)
    keep = t >= start.timestamp()
    if t.size:
        offset = (datetime.fromtimestamp(float(t[-1]), tz).utcoffset() or timedelta()).total_seconds()
        res = qc_metric(s.metric, t, v, utc_offset_s=offset)
        tests = {k: np.asarray(f)[keep].astype(int).tolist() for k, f in res.tests().items()}
        agg = np.asarray(res.aggregate)[keep].astype(int).tolist()
    else:
        tests, agg = {}, []
    return QcSeries(
        series=s,
        time=_times(t[keep], tz),
        value=v[keep].tolist(),
        flag=agg,
        tests=tests,
        flag_names={int(k): str(n) for k, n in FLAG_NAMES.items()},
    )


def anomaly(conn: Conn, s: SeriesInfo, start: datetime, end: datetime) -> AnomalySeries:
    check_range(start, end)
    t, v = _points(
        conn,
        s,
        start - ANOMALY_WARMUP,
        end,
        ANOMALY_MAX_POINTS,
        f"in the range and its {ANOMALY_WARMUP.days}-day warm-up",
        " (anomaly scores are computed at a few thousand readings per second): ask for a shorter range",
    )
    keep = t >= start.timestamp()
    scores = score_series(t, v) if t.size else np.zeros(0)
    return AnomalySeries(
        series=s,
        time=_times(t[keep], ZoneInfo(s.tz)),
        value=v[keep].tolist(),
        score=[None if not math.isfinite(x) else float(x) for x in scores[keep]],
    )


# --- farm indices ---------------------------------------------------------------------------------


def _nan_list(a: NDArray[np.float64], digits: int = 3) -> list[float | None]:
    return [None if not math.isfinite(x) else round(float(x), digits) for x in a]


def _nanmean0(a: NDArray[np.float64]) -> NDArray[np.float64]:
    """Mean over axis 0 ignoring NaN; NaN where a column has no value (and no warning)."""
    ok = np.isfinite(a)
    n = ok.sum(axis=0)
    total = np.where(ok, a, 0.0).sum(axis=0)
    return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def _daily(
    conn: Conn, series: Sequence[SeriesInfo], metric: str, start: datetime, end: datetime, n_days: int
) -> dict[str, NDArray[np.float64]] | None:
    """Per-day min/mean/max/sum of ``metric`` averaged over the farm's nodes (None if no series)."""
    ss = [s for s in series if s.metric == metric]
    if not ss:
        return None
    out = {k: np.full((len(ss), n_days), np.nan) for k in ("min", "mean", "max", "sum")}
    for i, b in enumerate(buckets(conn, ss, start, end, "1d")):
        for k in out:
            col = (
                getattr(b, k)
                if k != "sum"
                else [(m * c if m is not None else None) for m, c in zip(b.mean, b.count, strict=True)]
            )
            out[k][i, : len(col)] = [np.nan if x is None else x for x in col[:n_days]]
    return {k: _nanmean0(a) for k, a in out.items()}


def _hourly(
    conn: Conn, series: Sequence[SeriesInfo], metric: str, start: datetime, end: datetime
) -> tuple[NDArray[np.float64], NDArray[np.float64]] | None:
    """Hour starts (Unix s) and the farm-mean hourly value of ``metric`` (None if no series)."""
    ss = [s for s in series if s.metric == metric]
    if not ss:
        return None
    bs = buckets(conn, ss, start, end, "1h")
    t = np.array([x.timestamp() for x in bs[0].start])
    vals = np.array([[np.nan if m is None else m for m in b.mean] for b in bs], dtype=np.float64)
    return t, _nanmean0(vals) if vals.size else np.zeros(0)


def _per_day(
    t: NDArray[np.float64], x: NDArray[np.float64], bounds: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Sum per local day of per-reading quantities; days given by their start instants (+ end)."""
    out = np.full(len(bounds) - 1, np.nan)
    ok = np.isfinite(x)
    idx = np.searchsorted(bounds, t[ok], side="right") - 1
    inside = (idx >= 0) & (idx < len(out))
    if inside.any():
        sums = np.zeros(len(out))
        np.add.at(sums, idx[inside], x[ok][inside])
        seen = np.zeros(len(out), dtype=bool)
        seen[idx[inside]] = True
        out = np.where(seen, sums, np.nan)
    return out


def farm_indices(
    conn: Conn,
    farm_id: str,
    first: date,
    last: date,
    *,
    farms: Sequence[str] | None = None,
    crop: str | None = None,
    gdd_base_c: float = agro_config.GDD_BASE_CITRUS_C,
) -> FarmIndices:
    """Agronomic indices of ``farm_id`` for each local day ``first`` .. ``last`` (inclusive)."""
    if last < first:
        raise InvalidArgument("last day must not be before the first", field="last")
    n_days = (last - first).days + 1
    if n_days > MAX_DAYS:
        raise InvalidArgument(f"at most {MAX_DAYS} days", field="last")
    if crop is not None and crop not in agro.CROPS:
        raise InvalidArgument(f"crop must be one of {', '.join(agro.CROPS)}", field="crop")
    farm = get_farm(conn, farm_id, farms=farms)
    tz = ZoneInfo(farm.tz)
    start, end = local_midnight(first, tz), local_midnight(last + timedelta(days=1), tz)
    days = [first + timedelta(days=i) for i in range(n_days)]
    bounds = np.array([t.timestamp() for t in bucket_starts("1d", start, end, tz)] + [end.timestamp()])
    series = find_series(conn, farms=farms, farm=farm_id)
    notes: list[str] = []
    nan = np.full(n_days, np.nan)

    air = _daily(conn, series, "air_t", start, end, n_days)
    rh = _daily(conn, series, "air_rh", start, end, n_days)
    wind = _daily(conn, series, "wind_ms", start, end, n_days)
    solar = _daily(conn, series, "solar_wm2", start, end, n_days)
    rain = _daily(conn, series, "rain_mm", start, end, n_days)
    tmax, tmin = (air["max"], air["min"]) if air else (nan, nan)
    if air is None:
        notes.append("no air_t series: ET0, GDD, chill and frost hours need one")
    rain_mm = rain["sum"] if rain else nan
    et0 = nan
    if air is not None:
        doy = np.array([d.timetuple().tm_yday for d in days], dtype=np.float64)
        lat = farm.lat if farm.lat is not None else math.nan
        if farm.lat is None:
            notes.append("farm has no latitude: ET0 needs it")
        else:
            with np.errstate(all="ignore"):
                et0 = agro.et0_fao56_daily(
                    tmax=tmax,
                    tmin=tmin,
                    rh_max=rh["max"] if rh else None,
                    rh_min=rh["min"] if rh else None,
                    u2=wind["mean"] if wind else None,
                    rs=solar["mean"] * 0.0864 if solar else None,  # W/m² day mean -> MJ m-2 day-1
                    lat_deg=lat,
                    elevation_m=farm.elevation_m or 0.0,
                    doy=doy,
                )
    crop_name = crop or KIND_CROP.get(farm.kind)
    depletion = irrigation = nan
    if crop_name is not None and np.isfinite(et0).any():
        c = agro.CROPS[crop_name]
        wb = agro.soil_water_balance(
            np.nan_to_num(et0, nan=0.0),
            np.nan_to_num(rain_mm, nan=0.0),
            c.kc_mid,
            theta_fc=0.30,
            theta_wp=0.15,
            root_depth_m=c.root_depth_m,
            p=c.p,
        )
        depletion, irrigation = wb.depletion_mm, wb.irrigation_mm
        notes.append("water balance: loam soil (field capacity 0.30, wilting point 0.15), mid-season Kc")
    gdd = agro.gdd_daily(tmax, tmin, base=gdd_base_c)
    chill = frost = wet = nan
    air_raw = [s for s in series if s.metric == "air_t"]
    if air_raw:
        t, v = _points(conn, air_raw[0], start, end)
        if t.size:
            chill = _per_day(t, agro.chill_hours(t, v), bounds)
            frost = _per_day(t, agro.frost_hours(t, v, limit=KIND_FROST.get(farm.kind, 0.0)), bounds)
    thi_max = nan
    bands: list[str | None] = [None] * n_days
    risk: list[int | None] = [None] * n_days
    h_air = _hourly(conn, series, "air_t", start, end)
    h_rh = _hourly(conn, series, "air_rh", start, end)
    if h_air is not None and h_rh is not None:
        thi = agro.thi_nrc1971(h_air[1], h_rh[1])
        thi_max = np.full(n_days, np.nan)
        idx = np.searchsorted(bounds, h_air[0], side="right") - 1
        for d in range(n_days):
            sel = thi[(idx == d) & np.isfinite(thi)]
            if sel.size:
                thi_max[d] = sel.max()
        names = [b[0] for b in agro.THI_BANDS]
        bands = [None if i < 0 else names[i] for i in agro.thi_band(thi_max)]
    wet_metric = "leaf_wet" if any(s.metric == "leaf_wet" for s in series) else "air_rh"
    h_wet = _hourly(conn, series, wet_metric, start, end)
    rules_name = KIND_DISEASE.get(farm.kind)
    if h_wet is not None and h_air is not None and rules_name is not None:
        threshold = (
            agro_config.LEAF_WET_THRESHOLD_PCT
            if wet_metric == "leaf_wet"
            else agro_config.RH_WET_THRESHOLD_PCT
        )
        wp = agro.wet_periods(
            h_wet[0], h_wet[1], h_air[1], agro.DISEASE_RULES[rules_name], threshold=threshold
        )
        idx = np.searchsorted(bounds, h_wet[0], side="right") - 1
        wet = np.full(n_days, np.nan)
        for d in range(n_days):
            sel = (idx == d) & np.isfinite(wp.wet_hours)
            if sel.any():
                wet[d] = float(np.max(wp.wet_hours[sel]))
                risk[d] = int(np.max(wp.risk[sel]))
        if wet_metric == "air_rh":
            notes.append("no leaf_wet series: wetness from RH >= 90 %")
    dawn = below = nan
    do_series = [s for s in series if s.metric == "do_mgl"]
    if do_series:
        t, v = _points(conn, do_series[0], start - timedelta(hours=6), end)
        if t.size:
            below = _per_day(t, agro.hours_below(t, v), bounds)
            dawn = np.full(n_days, np.nan)
            for d, day in enumerate(days):
                night0 = local_midnight(day, tz) - timedelta(hours=4)  # 20:00 the evening before
                sunrise = local_midnight(day, tz) + timedelta(hours=6)
                sel = (t >= night0.timestamp()) & (t < sunrise.timestamp() - 3 * 3600)
                if sel.sum() >= 3:
                    f = agro.dawn_do_forecast(t[sel], v[sel], night0.timestamp(), sunrise.timestamp())
                    dawn[d] = float(np.asarray(f.dawn_do).reshape(-1)[0])
            notes.append("dawn DO: forecast for 06:00 from readings 20:00-03:00")
    return FarmIndices(
        farm=farm_id,
        tz=farm.tz,
        crop=crop_name,
        day=days,
        tmin_c=_nan_list(tmin),
        tmax_c=_nan_list(tmax),
        rain_mm=_nan_list(rain_mm),
        et0_mm=_nan_list(et0),
        water_depletion_mm=_nan_list(depletion),
        irrigation_mm=_nan_list(irrigation),
        gdd=_nan_list(gdd),
        chill_hours=_nan_list(chill),
        frost_hours=_nan_list(frost),
        thi_max=_nan_list(thi_max),
        thi_band=bands,
        wet_hours=_nan_list(wet),
        disease_risk=risk,
        dawn_do_mgl=_nan_list(dawn),
        do_hours_below=_nan_list(below),
        notes=notes,
    )
