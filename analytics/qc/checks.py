"""The QARTOD-style point tests: gross range, climatology, spike, rate of change, flat line, gap.

Each test takes ``(times, values)`` in the layout of ``analytics.qc.series`` and returns uint8
flags of the values' shape (pass=1, not evaluated=2, suspect=3, fail=4, missing=9). A missing
value or padding is always 9. Neighbour comparisons skip missing values and use the nearest
valid reading, but never across a gap longer than ``max_gap_s`` (then: not evaluated).

Causality: gross range, climatology, rate of change, flat line and gap flag a point from that
point and earlier ones only, so streaming ingest can flag each new reading at once. Spike needs
the next reading too (QARTOD's definition): the newest point of a series is "not evaluated"
until its successor arrives, i.e. spike flags lag by one reading.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from analytics.qc.config import FAIL, MISSING, NOT_EVALUATED, PASS, SUSPECT
from analytics.qc.series import (
    F64,
    Series2D,
    next_valid,
    normalise,
    prev_valid,
    search_rows,
    take_rows,
)

Flags = NDArray[np.uint8]


def _per_series(x: ArrayLike | None, s: Series2D, name: str) -> F64 | None:
    """A threshold given as a scalar or one value per series, as an ``(S, 1)`` column."""
    if x is None:
        return None
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 0:
        return np.full((s.v.shape[0], 1), float(a))
    if a.shape == (s.v.shape[0],):
        return a[:, None]
    raise ValueError(f"{name}: expected a scalar or one value per series ({s.v.shape[0]}), got {a.shape}")


def _finish(flags: Flags, s: Series2D) -> Flags:
    flags[~s.valid] = MISSING
    return flags.reshape(s.shape)


def _all_not_evaluated(s: Series2D) -> Flags:
    return _finish(np.full(s.v.shape, NOT_EVALUATED, dtype=np.uint8), s)


def gross_range(
    times: ArrayLike,
    values: ArrayLike,
    fail_lo: ArrayLike | None,
    fail_hi: ArrayLike | None,
    suspect_lo: ArrayLike | None = None,
    suspect_hi: ArrayLike | None = None,
) -> Flags:
    """Outside the sensor span ``[fail_lo, fail_hi]``: fail; outside the operator span: suspect.

    Bounds are scalars or one per series; ``None`` (or NaN) leaves that side open.
    """
    s = normalise(times, values)
    flags = np.full(s.v.shape, PASS, dtype=np.uint8)
    v = s.v
    with np.errstate(invalid="ignore"):
        for lo, hi, flag in ((suspect_lo, suspect_hi, SUSPECT), (fail_lo, fail_hi, FAIL)):
            lo_a = _per_series(lo, s, "lo")
            hi_a = _per_series(hi, s, "hi")
            out = np.zeros(v.shape, dtype=bool)
            if lo_a is not None:
                out |= v < lo_a
            if hi_a is not None:
                out |= v > hi_a
            flags[out] = flag
    return _finish(flags, s)


def month_of(times: ArrayLike, utc_offset_s: float = 0.0) -> NDArray[np.int64]:
    """Calendar month 0..11 of Unix times in a fixed UTC offset (NaN times give month 0)."""
    t = np.asarray(times, dtype=np.float64) + utc_offset_s
    secs = np.nan_to_num(t).astype("int64").astype("datetime64[s]")
    return secs.astype("datetime64[M]").astype(np.int64) % 12


def climatology(
    times: ArrayLike,
    values: ArrayLike,
    month_lo: ArrayLike,
    month_hi: ArrayLike,
    utc_offset_s: float = 0.0,
) -> Flags:
    """Outside the expected range for the reading's calendar month (local time): suspect.

    ``month_lo``/``month_hi`` are ``(12,)`` (January first) or ``(n_series, 12)`` (one row per
    series, e.g. per farm); NaN for a month means no climatology, so "not evaluated".
    """
    s = normalise(times, values)
    n_series = s.v.shape[0]
    lo = np.asarray(month_lo, dtype=np.float64)
    hi = np.asarray(month_hi, dtype=np.float64)
    for name, a in (("month_lo", lo), ("month_hi", hi)):
        if a.shape not in ((12,), (n_series, 12)):
            raise ValueError(f"{name}: expected shape (12,) or ({n_series}, 12), got {a.shape}")
    lo2 = np.broadcast_to(lo, (n_series, 12))
    hi2 = np.broadcast_to(hi, (n_series, 12))
    m = month_of(s.t, utc_offset_s)
    lo_p = np.take_along_axis(lo2, m, axis=1)
    hi_p = np.take_along_axis(hi2, m, axis=1)
    flags = np.full(s.v.shape, PASS, dtype=np.uint8)
    with np.errstate(invalid="ignore"):
        flags[(s.v < lo_p) | (s.v > hi_p)] = SUSPECT
    flags[np.isnan(lo_p) & np.isnan(hi_p)] = NOT_EVALUATED
    return _finish(flags, s)


def spike(
    times: ArrayLike,
    values: ArrayLike,
    suspect: float | None,
    fail: float | None,
    max_gap_s: float = np.inf,
) -> Flags:
    """QARTOD spike: ``|v_n - interp(v_prev, v_next at t_n)|`` above ``suspect``/``fail``.

    With regular sampling the interpolation is QARTOD's mean of the two neighbours; with
    irregular sampling it is the straight line between them at ``t_n``. Points without a valid
    neighbour on both sides within ``max_gap_s`` are not evaluated. Not causal (one-reading lag).
    """
    s = normalise(times, values)
    if suspect is None and fail is None:
        return _all_not_evaluated(s)
    ip = prev_valid(s.valid)
    inx = next_valid(s.valid)
    vp, vn = take_rows(s.v, ip), take_rows(s.v, inx)
    tp, tn = take_rows(s.t, ip), take_rows(s.t, inx)
    with np.errstate(invalid="ignore", divide="ignore"):
        w = (s.t - tp) / (tn - tp)
        ref = np.abs(s.v - (vp + w * (vn - vp)))
        ok = (ip >= 0) & (inx >= 0) & (s.t - tp <= max_gap_s) & (tn - s.t <= max_gap_s)
    flags = np.full(s.v.shape, PASS, dtype=np.uint8)
    with np.errstate(invalid="ignore"):
        if suspect is not None:
            flags[ref > suspect] = SUSPECT
        if fail is not None:
            flags[ref > fail] = FAIL
    flags[~ok] = NOT_EVALUATED
    return _finish(flags, s)


def rate_of_change(
    times: ArrayLike,
    values: ArrayLike,
    suspect_per_s: float | None,
    max_gap_s: float = np.inf,
) -> Flags:
    """``|v_n - v_prev| / (t_n - t_prev)`` above ``suspect_per_s`` (units per second): suspect.

    The first valid point, and a point whose previous valid reading is more than ``max_gap_s``
    earlier, is not evaluated. Causal.
    """
    s = normalise(times, values)
    if suspect_per_s is None:
        return _all_not_evaluated(s)
    ip = prev_valid(s.valid)
    vp, tp = take_rows(s.v, ip), take_rows(s.t, ip)
    with np.errstate(invalid="ignore"):
        dt = s.t - tp
        rate = np.abs(s.v - vp) / dt
        ok = (ip >= 0) & (dt <= max_gap_s)
        flags = np.where(rate > suspect_per_s, SUSPECT, PASS).astype(np.uint8)
    flags[~ok] = NOT_EVALUATED
    return _finish(flags, s)


def _range_table(v: F64) -> tuple[list[F64], list[F64]]:
    """Sparse tables of running max/min over windows of 2**k points (NaN ignored)."""
    mx, mn = [v], [v]
    k = 1
    n = v.shape[1]
    while (1 << k) <= n:
        h = 1 << (k - 1)
        a, b = mx[-1], mn[-1]
        with np.errstate(invalid="ignore"):
            mx.append(np.fmax(a[:, : n - (1 << k) + 1], a[:, h : h + n - (1 << k) + 1]))
            mn.append(np.fmin(b[:, : n - (1 << k) + 1], b[:, h : h + n - (1 << k) + 1]))
        k += 1
    return mx, mn


def _range_query(
    mx: list[F64], mn: list[F64], lo: NDArray[np.int64], hi: NDArray[np.int64]
) -> tuple[F64, F64]:
    """Max and min of row r's values over ``[lo[r, j], hi[r, j]]`` (inclusive, lo <= hi)."""
    length = hi - lo + 1
    k = np.floor(np.log2(np.maximum(length, 1))).astype(np.int64)
    row_of = np.broadcast_to(np.arange(lo.shape[0])[:, None], lo.shape)
    out_mx = np.full(lo.shape, np.nan)
    out_mn = np.full(lo.shape, np.nan)
    for level in np.unique(k):
        sel = k == level
        rows = row_of[sel]
        a, b = lo[sel], hi[sel] - (1 << int(level)) + 1
        with np.errstate(invalid="ignore"):
            out_mx[sel] = np.fmax(mx[level][rows, a], mx[level][rows, b])
            out_mn[sel] = np.fmin(mn[level][rows, a], mn[level][rows, b])
    return out_mx, out_mn


def flat_line(
    times: ArrayLike,
    values: ArrayLike,
    tolerance: float | None,
    suspect_s: float | None,
    fail_s: float | None,
) -> Flags:
    """Stuck sensor: every reading of the last ``suspect_s`` (``fail_s``) seconds lies within
    ``tolerance`` of the current one: suspect (fail).

    The window ``[t_n - D, t_n]`` must be covered: the series has a reading at or before
    ``t_n - D``. Before a series is ``suspect_s`` old, its points are not evaluated. Causal.
    """
    s = normalise(times, values)
    if tolerance is None or (suspect_s is None and fail_s is None):
        return _all_not_evaluated(s)
    n = s.v.shape[1]
    vv = np.where(s.valid, s.v, np.nan)
    mx, mn = _range_table(vv)
    idx = np.broadcast_to(np.arange(n, dtype=np.int64), s.v.shape)
    last_valid_upto = np.maximum.accumulate(np.where(s.valid, idx, -1), axis=1)
    flags = np.full(s.v.shape, PASS, dtype=np.uint8)
    durations = [(d, f) for d, f in ((suspect_s, SUSPECT), (fail_s, FAIL)) if d is not None]
    for i, (dur, flag) in enumerate(durations):
        at = search_rows(s.t, s.t - dur)
        # the window starts at the last valid reading at or before t_n - D
        start = np.where(at >= 0, np.take_along_axis(last_valid_upto, np.maximum(at, 0), axis=1), -1)
        covered = start >= 0
        lo = np.where(covered, start, idx)
        wmx, wmn = _range_query(mx, mn, lo, idx)
        with np.errstate(invalid="ignore"):
            flat = covered & (wmx - s.v < tolerance) & (s.v - wmn < tolerance)
        flags[flat] = flag
        if i == 0:
            flags[~covered] = NOT_EVALUATED
    return _finish(flags, s)


def gap(
    times: ArrayLike,
    values: ArrayLike,
    suspect_s: float | None,
    fail_s: float | None,
) -> Flags:
    """Continuity: the time since the previous valid reading above ``suspect_s`` (``fail_s``)
    flags the first reading after the gap suspect (fail). Missing values are 9; the first valid
    reading of a series is not evaluated. Causal.
    """
    s = normalise(times, values)
    ip = prev_valid(s.valid)
    with np.errstate(invalid="ignore"):
        dt = s.t - take_rows(s.t, ip)
        flags = np.full(s.v.shape, PASS, dtype=np.uint8)
        if suspect_s is not None:
            flags[dt > suspect_s] = SUSPECT
        if fail_s is not None:
            flags[dt > fail_s] = FAIL
    flags[ip < 0] = NOT_EVALUATED
    return _finish(flags, s)
