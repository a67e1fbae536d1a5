"""Pond dissolved oxygen: the dawn minimum forecast from the night's decline, and hours below 3.

At night respiration consumes oxygen and photosynthesis stops, so DO falls roughly linearly
from dusk to dawn, when it is lowest. Boyd, Romaire & Johnston (1978, *Trans. Am. Fish. Soc.*
107:484-492) project the dawn value along the straight line through dusk readings; here the line
is a least-squares fit through all of the night's readings so far (so more readings make it
steadier), extrapolated to sunrise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from analytics.agro.config import DO_LOW_MGL
from analytics.agro.durations import DEFAULT_MAX_GAP_S, hours_in_band
from analytics.agro.meteo import sun_times_utc
from analytics.qc.series import normalise

F64 = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class DawnForecast:
    """Per pond: DO forecast at sunrise (mg/L), the fitted slope (mg/L per hour), the forecast
    hours below the limit between the last reading and sunrise, and the readings used."""

    dawn_do: F64
    slope_per_h: F64
    hours_below: F64
    n_used: NDArray[np.int64]


def dawn_do_forecast(
    times: ArrayLike,
    do_mgl: ArrayLike,
    night_start: ArrayLike,
    sunrise: ArrayLike,
    limit: float = DO_LOW_MGL,
    min_points: int = 3,
) -> DawnForecast:
    """Forecast the dawn DO of each pond from readings taken since ``night_start`` (Unix s).

    ``times``/``do_mgl`` in the QC layout (one row per pond); ``night_start`` and ``sunrise`` are
    scalars or one per pond; readings after sunrise are ignored. A pond with fewer than
    ``min_points`` readings in the night gets NaN. A rising fit (no decline) forecasts the last
    reading: the line is for the nightly decline only.
    """
    s = normalise(times, do_mgl)
    n_ponds = s.v.shape[0]
    t0 = np.broadcast_to(np.asarray(night_start, dtype=np.float64), (n_ponds,))[:, None]
    tr = np.broadcast_to(np.asarray(sunrise, dtype=np.float64), (n_ponds,))[:, None]
    if (tr <= t0).any():
        raise ValueError("sunrise must be after night_start")
    if (s.v[s.valid] < 0).any():
        raise ValueError("dissolved oxygen cannot be negative")
    use = s.valid & (s.t >= t0) & (s.t <= tr)
    x = np.where(use, (s.t - tr) / 3600.0, 0.0)  # hours before sunrise (<= 0)
    y = np.where(use, s.v, 0.0)
    n = use.sum(axis=1)
    sx, sy = x.sum(axis=1), y.sum(axis=1)
    sxx, sxy = (x * x).sum(axis=1), (x * y).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        den = n * sxx - sx * sx
        slope = np.where(den > 0, (n * sxy - sx * sy) / den, np.nan)
        icpt = (sy - slope * sx) / n  # DO at sunrise on the fitted line
    rows = np.arange(n_ponds)
    if s.v.shape[1] == 0:
        last_v = last_x = np.full(n_ponds, np.nan)
    else:
        idx_last = np.where(use.any(axis=1), s.v.shape[1] - 1 - np.argmax(use[:, ::-1], axis=1), 0)
        last_v, last_x = s.v[rows, idx_last], x[rows, idx_last]
    ok = n >= max(min_points, 2)
    declining = slope < 0
    dawn = np.where(ok, np.where(declining, np.maximum(icpt, 0.0), last_v), np.nan)
    # hours below the limit from the last reading to sunrise along the forecast line
    with np.errstate(invalid="ignore", divide="ignore"):
        from_last = icpt + slope * last_x  # fitted value at the last reading
        x_cross = (limit - icpt) / slope  # when the line reaches the limit (hours before sunrise)
        below_h = np.where(from_last <= limit, -last_x, np.where(declining & (x_cross <= 0), -x_cross, 0.0))
    below_h = np.where(ok & declining, np.clip(below_h, 0.0, -last_x), np.where(ok, 0.0, np.nan))
    out = DawnForecast(dawn, np.where(ok, slope, np.nan), below_h, n.astype(np.int64))
    if len(s.shape) == 1:  # one pond in, scalars out
        return DawnForecast(
            *(np.asarray(f[0]) for f in (out.dawn_do, out.slope_per_h, out.hours_below, out.n_used))
        )
    return out


#: without the place, night is taken as 18:00 .. 06:00 local time
DEFAULT_DUSK_H, DEFAULT_DAWN_H = 18.0, 6.0


def night_bounds(
    t: float, lat: float | None = None, lon: float | None = None, utc_offset_s: float = 0.0
) -> tuple[float, float] | None:
    """(sunset, next sunrise) of the night ``t`` falls in (Unix s), or None by day. Sun times from
    the place (``lat``/``lon``, :func:`analytics.agro.meteo.sun_times_utc`), else local 18:00-06:00."""
    day = float(np.floor((t + utc_offset_s) / 86400.0))  # the local calendar day of t

    def sun(d: float) -> tuple[float, float]:
        if lat is None or lon is None:
            m = d * 86400.0 - utc_offset_s
            return m + DEFAULT_DAWN_H * 3600.0, m + DEFAULT_DUSK_H * 3600.0
        rise, sset = sun_times_utc(d, lat, lon)
        return float(rise), float(sset)

    rise, sset = sun(day)
    if t < rise:
        return sun(day - 1)[1], rise
    if t >= sset:
        return sset, sun(day + 1)[0]
    return None


def dawn_do_at_readings(
    times: ArrayLike,
    do_mgl: ArrayLike,
    lat: float | None = None,
    lon: float | None = None,
    utc_offset_s: float = 0.0,
    min_points: int = 3,
    from_index: int = 0,
) -> F64:
    """For each reading of one pond (``(T,)``, time order), the dawn DO forecast
    (:func:`dawn_do_forecast`) from that night's readings up to and including it; by day the
    measured DO (the forecast of now is now); NaN while the night has fewer than ``min_points``
    readings. Causal: a reading's value depends on it and earlier readings only. Only readings from
    ``from_index`` on are computed (the result has their length); earlier ones are history."""
    t = np.asarray(times, dtype=np.float64)
    v = np.asarray(do_mgl, dtype=np.float64)
    out = v.copy()
    nights: dict[tuple[float, float], list[int]] = {}
    for i, ti in enumerate(t.tolist()):
        if i < from_index:
            continue
        b = night_bounds(ti, lat, lon, utc_offset_s)
        if b is not None:
            nights.setdefault(b, []).append(i)
    for (dusk, dawn), idx in nights.items():
        # one row per reading of the night: the night's readings up to it (later ones NaN)
        first = int(np.searchsorted(t, dusk, side="left"))
        last = idx[-1] + 1
        tn, vn = t[first:last], v[first:last]
        rows = np.array(idx) - first
        upto = np.arange(len(tn))[None, :] <= rows[:, None]
        fc = dawn_do_forecast(tn, np.where(upto, vn, np.nan), dusk, dawn, min_points=min_points)
        out[idx] = fc.dawn_do
    res: F64 = out[from_index:]
    return res


def hours_below(
    times: ArrayLike,
    do_mgl: ArrayLike,
    limit: float = DO_LOW_MGL,
    max_gap_s: float = DEFAULT_MAX_GAP_S,
) -> F64:
    """Measured hours below ``limit`` mg/L of the segment ending at each reading."""
    return hours_in_band(times, do_mgl, -np.inf, limit, max_gap_s)
