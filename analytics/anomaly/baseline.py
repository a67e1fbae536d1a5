"""Predictors of the next value and their running errors (vectorised over series).

Six predictors compete per series: persistence (last value), a slow mean, a daily profile plus a
slow offset, a daily+weekly profile plus a slow offset, and persistence corrected by the daily or
weekly profile's change since the last point (seasonal differencing). Each keeps a running mean
absolute error; the series is judged against the predictor with the smallest error, so a
sine-like diurnal temperature, a random-walk soil moisture and a flat pond pH each get a fitting
baseline without per-series tuning. The profiles are piecewise constant over time-of-day /
time-of-week bins; a series gets as many bins as its sampling interval can fill (at most
``daily_bins`` / ``weekly_bins``), fixed after its first few points.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from analytics.anomaly.config import DAY_S, WEEK_S, DetectorConfig
from analytics.anomaly.state import PREDICTORS, AnomalyState
from analytics.anomaly.vec import vmax, vmin

_F32 = np.float32
#: predictors that extrapolate from the last value (their error grows across a gap)
FAST = np.array([name.startswith("persist") for name in PREDICTORS])
#: predictors that describe where the series usually is (used for the level feature)
SLOW = np.array([name in ("mean", "daily", "weekly") for name in PREDICTORS])
#: slow predictors that follow a seasonal profile (the level test keeps their residuals apart)
SEASONAL = np.array([name in ("daily", "weekly") for name in PREDICTORS])


def rate(k: np.ndarray, per_interval: float) -> np.ndarray:
    """EWMA weight after ``k`` elapsed intervals at ``per_interval``: 1 - (1-rate)**k.

    Every series one interval on (regular sampling): the same computation over ones, done once
    per shape and kept (read-only).
    """
    if (k == 1).all():
        key = (len(k), per_interval)
        out = _RATE_ONE.get(key)
        if out is None:
            if len(_RATE_ONE) > 64:
                _RATE_ONE.clear()
            out = _RATE_ONE[key] = _rate(np.ones(len(k), dtype=k.dtype), per_interval)
            out.flags.writeable = False
        return out
    return _rate(k, per_interval)


def _rate(k: np.ndarray, per_interval: float) -> np.ndarray:
    out: np.ndarray = (-np.expm1(k * np.log1p(-per_interval))).astype(_F32, copy=False)
    return out


_RATE_ONE: dict[tuple[int, float], np.ndarray] = {}


def select(mask: np.ndarray, a: np.ndarray, b: float | np.floating[Any] | np.ndarray) -> np.ndarray:
    """``np.where(mask, a, b)`` where ``a`` already has the result's shape and dtype (and is
    not changed afterwards): ``a`` itself when every ``mask`` entry is set, the usual case of a
    series-wide condition (one reduction instead of a select and a copy)."""
    if mask.all():
        return a
    out: np.ndarray = np.where(mask, a, b)
    return out


@dataclass
class Forecast:
    """Everything :func:`learn` needs from :func:`forecast` for the same point."""

    preds: np.ndarray  # (N, P) predictions
    ready: np.ndarray  # (N, P) predictor defined at this point (error is tracked)
    usable: np.ndarray  # (N, P) predictor trusted enough to be chosen
    idx_d: np.ndarray
    idx_w: np.ndarray
    pd: np.ndarray
    pw: np.ndarray
    learning: np.ndarray
    ready_d: np.ndarray
    ready_w: np.ndarray
    w: np.ndarray  # the weekly profile's bins at idx_w (pw = pd + w)


def _bin_index(t: np.ndarray, period: float, bins: np.ndarray, width: int) -> np.ndarray:
    """Flat index of the profile bin holding phase ``t mod period`` (``bins`` bins per series)."""
    # series on a common clock (a fleet's tick, a batch in lockstep) share one exact modulo
    common = len(t) > 0 and t[0] == t[-1] and bool((t == t[0]).all())
    phase = np.mod(t[0], period) if common else np.mod(t, period)
    b = np.floor(phase * (bins / period)).astype(np.intp)
    # np.clip of integers, without its slower integer loop
    vmax(b, 0, out=b)
    vmin(b, width - 1, out=b)
    out: np.ndarray = b + row_offsets(len(t), width)
    return out


_ROWS: dict[tuple[int, int], np.ndarray] = {}


def row_offsets(n: int, width: int) -> np.ndarray:
    """``arange(n) * width`` (flat offsets of the rows of an (n, width) table), cached per shape."""
    key = (n, width)
    rows = _ROWS.get(key)
    if rows is None:
        if len(_ROWS) > 64:
            _ROWS.clear()
        rows = _ROWS[key] = np.arange(n, dtype=np.intp) * width
        rows.flags.writeable = False
    return rows


def forecast(st: AnomalyState, t: np.ndarray, has_prev: np.ndarray) -> Forecast:
    """Predictions of every predictor for the points at ``t`` (state before those points)."""
    cfg = st.cfg
    fix = (st.n == cfg.bins_after_points) & (st.dt_typ > 0)
    if fix.any():
        st.season_t0 = np.where(fix, t, st.season_t0)
        dt = np.maximum(st.dt_typ, _F32(1e-3))
        st.bins_d = np.where(fix, np.clip(np.floor(DAY_S / dt), 1, cfg.daily_bins), st.bins_d).astype(
            _F32, copy=False
        )
        st.bins_w = np.where(fix, np.clip(np.floor(WEEK_S / dt), 1, cfg.weekly_bins), st.bins_w).astype(
            _F32, copy=False
        )
    learning = st.bins_d > 0
    since = select(learning, t - st.season_t0, -1.0)

    idx_d = _bin_index(t, DAY_S, st.bins_d, cfg.daily_bins)
    idx_w = _bin_index(t, WEEK_S, st.bins_w, cfg.weekly_bins)
    pd = st.daily.reshape(-1)[idx_d]
    w = st.weekly.reshape(-1)[idx_w]
    pw = pd + w
    # the columns written in place (np.stack of six arrays cost twice as much)
    n = len(t)
    preds = np.empty((n, len(PREDICTORS)), dtype=_F32)
    preds[:, 0] = st.x_last
    preds[:, 1] = st.mean
    np.add(pd, st.off_d, out=preds[:, 2])
    np.add(pw, st.off_w, out=preds[:, 3])
    np.add(st.x_last, pd - st.prev_d, out=preds[:, 4])
    np.add(st.x_last, pw - st.prev_w, out=preds[:, 5])
    ready_d = since >= DAY_S
    ready_w = since >= WEEK_S
    ready = np.stack([has_prev, has_prev, ready_d, ready_w, ready_d, ready_w], axis=1)
    # a seasonal predictor competes once its error has been tracked over a whole cycle
    trusted_d = since >= 2 * DAY_S
    trusted_w = since >= 2 * WEEK_S
    trusted = np.stack([has_prev, has_prev, trusted_d, trusted_w, trusted_d, trusted_w], axis=1)
    usable = trusted & (st.err_n >= _F32(cfg.min_error_points))
    return Forecast(preds, ready, usable, idx_d, idx_w, pd, pw, learning, ready_d, ready_w, w)


def learn(st: AnomalyState, f: Forecast, xr: np.ndarray, abs_err: np.ndarray, k: np.ndarray) -> None:
    """Update error trackers, level, offsets and profiles with the points ``xr``."""
    cfg = st.cfg
    st.err_n = np.where(f.ready, st.err_n + _F32(1.0), st.err_n).astype(_F32, copy=False)
    a_err = vmax(_F32(1.0) / vmax(st.err_n, 1.0), cfg.error_rate)
    st.err = np.where(f.ready, st.err + a_err * (abs_err - st.err), st.err).astype(_F32, copy=False)

    first = _F32(1.0) / (st.n + _F32(1.0))
    a_lvl = np.maximum(rate(k, cfg.level_rate), first).astype(_F32, copy=False)
    st.mean = (st.mean + a_lvl * (xr - st.mean)).astype(_F32, copy=False)
    a_off = np.maximum(rate(k, cfg.offset_rate), first).astype(_F32, copy=False)
    e_d = xr - f.pd
    e_w = xr - f.pw
    st.off_d = _offset(f.ready_d, st.off_d, a_off, e_d)
    st.off_w = _offset(f.ready_w, st.off_w, a_off, e_w)
    st.prev_d = f.pd
    st.prev_w = f.pw
    dt = vmax(st.dt_typ, 1e-3)
    _learn_profile(st.daily, f.pd, e_d, f.idx_d, f.learning, f.ready_d, st.bins_d, DAY_S, dt, cfg)
    _learn_profile(st.weekly, f.w, e_w, f.idx_w, f.learning, f.ready_w, st.bins_w, WEEK_S, dt, cfg)


def _offset(ready: np.ndarray, off: np.ndarray, a_off: np.ndarray, err: np.ndarray) -> np.ndarray:
    """The slow offset of a seasonal baseline after the residuals ``err``: 0 until its profile
    is ready (no arithmetic when no series' profile is)."""
    if not ready.any():
        return np.zeros(len(off), dtype=_F32)
    out: np.ndarray = select(ready, off + a_off * (err - off), _F32(0.0)).astype(_F32, copy=False)
    return out


def _learn_profile(
    table: np.ndarray,
    cur: np.ndarray,
    err: np.ndarray,
    idx: np.ndarray,
    learning: np.ndarray,
    ready: np.ndarray,
    bins: np.ndarray,
    period: float,
    dt: np.ndarray,
    cfg: DetectorConfig,
) -> None:
    """Move this phase's bin (flat index ``idx`` of ``table``, value ``cur``) towards the value
    (the whole way during the first cycle); ``dt`` is the typical interval, at least 1 ms.

    Every series has its own row of ``table``, so the flat indices are distinct and the bins'
    values, read once by :func:`forecast`, are written back without a second read.
    """
    per_bin = vmax((period / vmax(bins, 1.0)) / dt, 1.0)
    a = select(ready, _F32(cfg.season_rate) / per_bin.astype(_F32, copy=False), _F32(1.0))
    a = select(learning, a, _F32(0.0)).astype(_F32, copy=False)
    table.reshape(-1)[idx] = cur + a * err
