"""Thermal time and cold: growing degree days, chill hours, frost hours.

Daily GDD use the simple averaging method with an optional horizontal upper cut-off
(McMaster & Wilhelm 1997, method 1); sub-daily readings integrate max(0, T - base) over the
straight line between readings. Chill hours count time at 0-7.2 °C (Weinberger 1950); frost
hours count time at or below a damage threshold (citrus fruit ≈ -2.2 °C, tea buds ≈ -2 °C).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from analytics.agro.config import CHILL_HI_C, CHILL_LO_C, FROST_CITRUS_FRUIT_C, GDD_BASE_CITRUS_C
from analytics.agro.durations import DEFAULT_MAX_GAP_S, hours_in_band, longest_run_hours, segments
from analytics.agro.inputs import arr, broadcast, check_range

F64 = NDArray[np.float64]


def gdd_daily(
    tmax: ArrayLike,
    tmin: ArrayLike,
    base: float = GDD_BASE_CITRUS_C,
    upper: float | None = None,
) -> F64:
    """Growing degree days per day: max(0, (Tmax + Tmin)/2 - base), temperatures first capped
    at ``upper`` when given. NaN where a temperature is missing; ``np.nancumsum`` accumulates."""
    a = broadcast(tmax=arr("tmax", tmax), tmin=arr("tmin", tmin))
    check_range("tmax", a["tmax"])
    check_range("tmin", a["tmin"])
    with np.errstate(invalid="ignore"):
        if (a["tmin"] > a["tmax"]).any():
            raise ValueError("tmin is above tmax")
    hi, lo = a["tmax"], a["tmin"]
    if upper is not None:
        if upper <= base:
            raise ValueError(f"upper cut-off {upper} must be above base {base}")
        hi, lo = np.minimum(hi, upper), np.minimum(lo, upper)
    return np.maximum((hi + lo) / 2.0 - base, 0.0)


def degree_days(
    times: ArrayLike,
    values: ArrayLike,
    base: float = GDD_BASE_CITRUS_C,
    max_gap_s: float = DEFAULT_MAX_GAP_S,
) -> F64:
    """Degree days above ``base`` of the segment ending at each reading (°C·day), integrating
    max(0, T - base) exactly over the straight line between readings (sum them per day)."""
    s, a, b, h = segments(times, values, max_gap_s)
    ea, eb = a - base, b - base
    hi, lo = np.fmax(ea, eb), np.fmin(ea, eb)
    with np.errstate(invalid="ignore", divide="ignore"):
        both = np.where(lo >= 0, (ea + eb) / 2.0, 0.0)
        cross = np.where((hi > 0) & (lo < 0), hi * hi / (2.0 * (hi - lo)), 0.0)
    area = np.where(h > 0, (both + cross) * h / 24.0, 0.0)
    return np.nan_to_num(area).reshape(s.shape)


def chill_hours(
    times: ArrayLike,
    values: ArrayLike,
    lo: float = CHILL_LO_C,
    hi: float = CHILL_HI_C,
    max_gap_s: float = DEFAULT_MAX_GAP_S,
) -> F64:
    """Hours at ``lo``..``hi`` °C of the segment ending at each reading (0-7.2 °C model)."""
    return hours_in_band(times, values, lo, hi, max_gap_s)


def frost_hours(
    times: ArrayLike,
    values: ArrayLike,
    limit: float = FROST_CITRUS_FRUIT_C,
    max_gap_s: float = DEFAULT_MAX_GAP_S,
) -> F64:
    """Hours at or below ``limit`` °C of the segment ending at each reading."""
    return hours_in_band(times, values, -np.inf, limit, max_gap_s)


def longest_frost_hours(
    times: ArrayLike,
    values: ArrayLike,
    limit: float = FROST_CITRUS_FRUIT_C,
    max_gap_s: float = DEFAULT_MAX_GAP_S,
) -> F64:
    """Longest continuous stretch at or below ``limit`` per series, hours ("held for hours")."""
    return longest_run_hours(times, values, -np.inf, limit, max_gap_s)
