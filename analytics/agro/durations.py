"""Time spent in a value band from irregular samples, per reading and per local day.

Readings use the QC layout (``analytics.qc.series``: 1-D or NaN-padded 2-D, irregular times).
Between two consecutive valid readings the value is taken as a straight line, so the time in
a band is exact for that interpolation; a segment longer than ``max_gap_s`` counts as unknown
(nothing). Each segment is credited to the reading that ends it, which keeps every result causal.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from analytics.qc.series import Series2D, normalise, prev_valid, take_rows

F64 = NDArray[np.float64]
DEFAULT_MAX_GAP_S = 3 * 3600.0


def segments(times: ArrayLike, values: ArrayLike, max_gap_s: float) -> tuple[Series2D, F64, F64, F64]:
    """``(series, previous value, current value, duration h)`` of the segment ending at each
    reading; duration 0 where there is no usable segment (first reading, gap, missing)."""
    s = normalise(times, values)
    ip = prev_valid(s.valid)
    a = take_rows(s.v, ip)
    with np.errstate(invalid="ignore"):
        dt = s.t - take_rows(s.t, ip)
        ok = s.valid & (ip >= 0) & (dt <= max_gap_s)
    hours = np.where(ok, dt / 3600.0, 0.0)
    return s, np.where(ok, a, np.nan), np.where(ok, s.v, np.nan), hours


def band_fraction(a: F64, b: F64, lo: float, hi: float) -> F64:
    """Fraction of a linear segment from ``a`` to ``b`` spent inside ``[lo, hi]``."""
    mn, mx = np.fmin(a, b), np.fmax(a, b)
    with np.errstate(invalid="ignore", divide="ignore"):
        overlap = np.clip(np.minimum(mx, hi) - np.maximum(mn, lo), 0.0, None) / (mx - mn)
        flat = ((mn >= lo) & (mn <= hi)).astype(np.float64)
    return np.where(np.isnan(a) | np.isnan(b), 0.0, np.where(mx > mn, overlap, flat))


def hours_in_band(
    times: ArrayLike,
    values: ArrayLike,
    lo: float = -np.inf,
    hi: float = np.inf,
    max_gap_s: float = DEFAULT_MAX_GAP_S,
) -> F64:
    """Hours inside ``[lo, hi]`` of the segment ending at each reading (values' shape)."""
    s, a, b, h = segments(times, values, max_gap_s)
    return (band_fraction(a, b, lo, hi) * h).reshape(s.shape)


def longest_run_hours(
    times: ArrayLike,
    values: ArrayLike,
    lo: float = -np.inf,
    hi: float = np.inf,
    max_gap_s: float = DEFAULT_MAX_GAP_S,
) -> F64:
    """Longest continuous stretch inside ``[lo, hi]`` per series, hours (e.g. frost held)."""
    s, a, b, h = segments(times, values, max_gap_s)
    with np.errstate(invalid="ignore"):
        inside = s.valid & (s.v >= lo) & (s.v <= hi)
        prev_in = (h > 0) & (a >= lo) & (a <= hi)
    part = band_fraction(a, b, lo, hi) * h
    cont = inside & prev_in  # the run goes on through this whole segment
    start = inside & ~prev_in  # a run begins inside this segment (or after a gap: at 0 h)
    add = np.where(cont, h, np.where(start, part, 0.0))
    # missing readings neither add nor reset: a run continues across them to the next valid one
    run = np.where(inside, seg_sum(add, start | (s.valid & ~inside)), 0.0)
    # leaving the band (or passing through it) within a segment ends a run partway
    leave = s.valid & ~inside & (h > 0)
    prev_run = np.where(prev_in, np.nan_to_num(take_rows(run, prev_valid(s.valid))), 0.0)
    ended = np.where(leave, prev_run + part, 0.0)
    best = np.maximum(np.max(run, axis=1, initial=0.0), np.max(ended, axis=1, initial=0.0))
    return np.asarray(best.reshape(s.shape[:-1]), dtype=np.float64)


def seg_sum(x: F64, reset: NDArray[np.bool_]) -> F64:
    """Running sum along the last axis that restarts (including ``x``) where ``reset`` is true."""
    c = np.cumsum(x, axis=-1)
    n = x.shape[-1]
    idx = np.where(reset, np.arange(n), 0)
    r = np.maximum.accumulate(idx, axis=-1)
    before = np.where(r > 0, np.take_along_axis(c, np.maximum(r - 1, 0), axis=-1), 0.0)
    return c - before


def local_day(times: ArrayLike, utc_offset_s: float = 0.0) -> NDArray[np.int64]:
    """Local calendar day number (days since 1970-01-01 in the given UTC offset)."""
    t = np.asarray(times, dtype=np.float64)
    return np.floor((np.nan_to_num(t) + utc_offset_s) / 86_400.0).astype(np.int64)


def per_day(
    times: ArrayLike,
    x: ArrayLike,
    utc_offset_s: float = 0.0,
    how: str = "sum",
) -> tuple[NDArray[np.int64], F64]:
    """Aggregate per-reading quantities to local days: ``(day numbers, (n_series, n_days))``.

    ``how`` is ``"sum"`` or ``"max"``; NaN entries are skipped; a day without any finite entry
    is NaN. Day numbers cover every day from the first to the last reading of all series.
    """
    if how not in ("sum", "max"):
        raise ValueError(f"how must be 'sum' or 'max', got {how!r}")
    xa = np.asarray(x, dtype=np.float64)
    s = normalise(times, xa)
    d = local_day(s.t, utc_offset_s)
    use = ~s.padding & np.isfinite(s.v)
    if not use.any():
        empty = np.full((s.v.shape[0], 0), np.nan)
        return np.zeros(0, dtype=np.int64), (empty[0] if len(s.shape) == 1 else empty)
    d0, d1 = d[~s.padding].min(), d[~s.padding].max()
    n_days = int(d1 - d0 + 1)
    rows = np.broadcast_to(np.arange(s.v.shape[0])[:, None], s.v.shape)
    flat = (rows * n_days + (d - d0))[use]
    out = np.full(s.v.shape[0] * n_days, -np.inf if how == "max" else 0.0)
    if how == "sum":
        np.add.at(out, flat, s.v[use])
    else:
        np.maximum.at(out, flat, s.v[use])
    seen = np.zeros(out.shape, dtype=bool)
    seen[flat] = True
    out = np.where(seen, out, np.nan).reshape(s.v.shape[0], n_days)
    return np.arange(d0, d1 + 1, dtype=np.int64), (out[0] if len(s.shape) == 1 else out)
