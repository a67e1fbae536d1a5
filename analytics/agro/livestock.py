"""Pig heat stress (NRC 1971 temperature-humidity index) and drinking-water drop.

THI = 1.8 T + 32 - (0.55 - 0.0055 RH)(1.8 T - 26) with T in °C and RH in % (NRC 1971,
*A guide to environmental research on animals*); bands are configuration (default: the
Livestock Weather Safety Index categories). A pen drinking clearly less than on its own recent
days is an early sign of disease or heat stress: the drop is measured against the median of the
pen's previous days, never against other pens.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from analytics.agro.config import (
    THI_BANDS,
    WATER_BASELINE_DAYS,
    WATER_DROP_ALERT,
    WATER_MIN_BASELINE_DAYS,
    WATER_SAME_HOURS_H,
)
from analytics.agro.inputs import arr, broadcast, check_range

F64 = NDArray[np.float64]


def thi_nrc1971(t: ArrayLike, rh: ArrayLike) -> F64:
    """Temperature-humidity index (NRC 1971); 23 °C at 65 % gives 70.44."""
    a = broadcast(t=arr("t", t), rh=arr("rh", rh))
    check_range("t", a["t"])
    check_range("rh", a["rh"])
    tf = 1.8 * a["t"]
    return tf + 32.0 - (0.55 - 0.0055 * np.minimum(a["rh"], 100.0)) * (tf - 26.0)


def thi_band(thi: ArrayLike, bands: Sequence[tuple[str, float]] = THI_BANDS) -> NDArray[np.int64]:
    """Index into ``bands`` (sorted ``(name, lower bound)`` pairs) for each THI; -1 for NaN."""
    lows = np.array([lo for _, lo in bands], dtype=np.float64)
    if lows.size == 0 or (np.diff(lows) <= 0).any():
        raise ValueError("bands must be non-empty with strictly increasing lower bounds")
    x = np.asarray(thi, dtype=np.float64)
    idx = np.searchsorted(lows, x, side="right") - 1
    return np.where(np.isnan(x), -1, np.maximum(idx, 0)).astype(np.int64)


def water_drop(
    daily_litres: ArrayLike,
    baseline_days: int = WATER_BASELINE_DAYS,
    min_days: int = WATER_MIN_BASELINE_DAYS,
    alert_drop: float = WATER_DROP_ALERT,
) -> tuple[F64, NDArray[np.bool_]]:
    """Relative change of each day's drinking water versus the median of the pen's previous
    ``baseline_days`` days (NaN days skipped), and whether it is an alert (drop >= ``alert_drop``).

    ``daily_litres``: ``(n_days,)`` or ``(n_pens, n_days)``. The change is NaN (and no alert)
    when fewer than ``min_days`` previous days are known or the baseline is 0. Causal.
    """
    if not 1 <= min_days <= baseline_days:
        raise ValueError("need 1 <= min_days <= baseline_days")
    if not 0.0 < alert_drop < 1.0:
        raise ValueError("alert_drop is a fraction in (0, 1)")
    x = np.asarray(daily_litres, dtype=np.float64)
    if x.ndim not in (1, 2):
        raise ValueError(f"daily_litres must be (days,) or (pens, days), got {x.shape}")
    if (x[np.isfinite(x)] < 0).any():
        raise ValueError("daily_litres: negative water volume")
    x2 = x.reshape(1, -1) if x.ndim == 1 else x
    if x2.shape[1] == 0:
        return np.full(x.shape, np.nan), np.zeros(x.shape, dtype=bool)
    padded = np.concatenate([np.full((x2.shape[0], baseline_days), np.nan), x2], axis=1)
    win = np.lib.stride_tricks.sliding_window_view(padded[:, :-1], baseline_days, axis=1)
    count = np.isfinite(win).sum(axis=-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows: handled by count
        base = np.nanmedian(win, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        change = np.where((count >= min_days) & (base > 0), x2 / base - 1.0, np.nan)
    alert = np.nan_to_num(change, nan=0.0) <= -alert_drop
    return change.reshape(x.shape), alert.reshape(x.shape)


def same_hours_totals(
    times: ArrayLike,
    litres: ArrayLike,
    at: ArrayLike,
    window_h: float = WATER_SAME_HOURS_H,
    baseline_days: int = WATER_BASELINE_DAYS,
) -> F64:
    """Litres of the ``window_h`` hours up to each time of ``at`` and of the same hours on each of
    the ``baseline_days`` previous days: ``(len(at), baseline_days + 1)``, oldest day first, NaN
    for a day whose window holds no reading. ``times``/``litres``: one meter (``(T,)``, time order)."""
    t = np.asarray(times, dtype=np.float64)
    x = np.nan_to_num(np.asarray(litres, dtype=np.float64), nan=0.0)
    a = np.asarray(at, dtype=np.float64)
    if window_h <= 0 or window_h > 24:
        raise ValueError("window_h must be in (0, 24] hours")
    csum = np.concatenate([[0.0], np.cumsum(x)])
    ends = a[:, None] - 86400.0 * np.arange(baseline_days, -1, -1)[None, :]
    hi = np.searchsorted(t, ends, side="right")
    lo = np.searchsorted(t, ends - window_h * 3600.0, side="right")
    out: F64 = np.where(hi > lo, csum[hi] - csum[lo], np.nan)
    return out


def water_drop_same_hours(
    times: ArrayLike,
    litres: ArrayLike,
    at: ArrayLike,
    window_h: float = WATER_SAME_HOURS_H,
    baseline_days: int = WATER_BASELINE_DAYS,
    min_days: int = WATER_MIN_BASELINE_DAYS,
) -> F64:
    """Relative change of a pen's drinking water in the ``window_h`` hours up to each time of
    ``at`` versus the same hours of its previous ``baseline_days`` days: :func:`water_drop` on
    :func:`same_hours_totals` (litres per interval, ``(T,)``, time order). NaN where fewer than
    ``min_days`` previous days are known. Causal."""
    totals = same_hours_totals(times, litres, at, window_h, baseline_days)
    change, _ = water_drop(totals, baseline_days, min_days)
    out: F64 = change[:, -1]
    return out
