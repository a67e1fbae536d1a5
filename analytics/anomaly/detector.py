"""The causal streaming detector: one time step for many series at once, and loops over it.

Every series advances by one observation per step; a step touches only that series' state and
its new value, so the score of a point depends only on it and earlier points, and feeding a
series in batches of any size gives the same scores as feeding it all at once (the loop is the
same code either way). See docs/analytics.md, "Streaming anomaly detection", for the method.
"""

from __future__ import annotations

import numpy as np

from analytics.anomaly.baseline import FAST, forecast, learn, row_offsets, select
from analytics.anomaly.config import DAY_S, DEFAULT_CONFIG, DetectorConfig
from analytics.anomaly.state import PREDICTORS, AnomalyState
from analytics.anomaly.tails import (
    decay_due,
    edges,
    exceedance_at,
    log2,
    log10,
    renormalise,
    row_bases,
    row_size,
    survival_log10,
    update_tails,
)
from analytics.anomaly.vec import vmax, vmin

_F32 = np.float32
#: E|e| = sigma * sqrt(2/pi) for a normal error: converts a mean absolute error to a sigma
_MAE_TO_SIGMA = _F32(np.sqrt(np.pi / 2.0))
_TINY = _F32(1e-6)
_I_MEAN = PREDICTORS.index("mean")
#: the seasonal predictors (baseline.SEASONAL)
_I_DAILY, _I_WEEKLY = PREDICTORS.index("daily"), PREDICTORS.index("weekly")
#: time steps transposed at a time by :func:`update`
_BLOCK = 64
#: series advanced together through a long batch (45 MB of state): larger blocks spread each
#: step's fixed cost (some 300 numpy calls) over more series, smaller ones keep more of the state
#: in the cache. Process-time A/B on the benchmark VM (ninth session), points/s: 10,000 series in
#: blocks of 2,500 / 5,000 / 10,000: 1.23 / 1.45 / 1.55 M; 20,000 series in blocks of 5,000 /
#: 10,000 / 20,000: 1.50 / 1.55 / 1.31 M. Short batches (a tick) advance all series at once.
_SERIES_BLOCK = 10000


def _lo_edges(cfg: DetectorConfig) -> np.ndarray:
    """Lowest histogram edge (log2) of the point, level, seasonal level and density features, (4,)."""
    return np.array([cfg.tail_lo, cfg.tail_lo, cfg.tail_lo, cfg.density_lo], dtype=_F32)


def step(st: AnomalyState, t: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Advance every series of ``st`` by one observation; returns their scores (float32).

    ``t`` (float64 Unix seconds) and ``x`` (float64) must be finite for every series;
    :func:`update` takes care of missing values.
    """
    cfg = st.cfg
    n = len(x)
    first = st.n == 0
    has_prev = ~first
    if first.any():
        st.x_ref = np.where(first, x, st.x_ref)
        st.t_first = np.where(first, t, st.t_first)
    xr = (x - st.x_ref).astype(_F32, copy=False)

    k = _intervals(st, t, has_prev)

    # residuals against the best predictor (point) and the best slow baseline (level)
    fc = forecast(st, t, has_prev)
    abs_err = np.abs(xr[:, None] - fc.preds)
    npred = abs_err.shape[1]
    rows = row_offsets(n, npred)
    err_usable = np.where(fc.usable, st.err, np.inf)
    i_best = rows + np.argmin(err_usable, axis=1)
    # (an any() over the predictor axis loops per series: 0.07 ms for 5,000 series)
    has_seas = fc.usable[:, _I_DAILY] | fc.usable[:, _I_WEEKLY]
    i_seas = rows + _best_seasonal(err_usable)
    flat_abs, flat_err = abs_err.reshape(-1), st.err.reshape(-1)
    eps = (_F32(1e-7) * (np.abs(st.x_ref) + np.abs(st.mean)) + _F32(1e-30)).astype(_F32, copy=False)

    # the series' unit of surprise: fixed once (the slow mean's error after a few points), so the
    # histograms below rank raw deviations; all adaptation happens in the decayed histograms
    mean_err = flat_err[rows + _I_MEAN]
    fix = (st.scale == 0) & (st.n >= cfg.scale_after_points) & (mean_err > 0)
    if fix.any():
        st.scale = np.where(fix, mean_err, st.scale).astype(_F32, copy=False)
    unit = st.scale * _MAE_TO_SIGMA + eps
    if k is _ones(n):  # one interval on for every series: no gap widens a fast prediction
        unit_gap = unit
    else:
        unit_gap = unit * np.where(FAST[i_best - rows], np.sqrt(np.minimum(k, _F32(100.0))), _F32(1.0))
    # the level has two histograms: residuals from the plain mean and from the best seasonal
    # profile, each only of its own residuals (a diurnal series' first days against the mean must
    # not set the scale its profile's residuals are judged on for weeks after)
    feats = log2(
        np.stack(
            [flat_abs[i_best] / unit_gap, flat_abs[rows + _I_MEAN] / unit, flat_abs[i_seas] / unit],
            axis=1,
        )
        + _TINY
    )
    tracked = fc.usable.reshape(-1)[i_best] & (st.scale > 0)
    seasonal_level = has_seas & _seasonal_is_best_slow(err_usable)

    # all four histogram features of the step, (N, 4): the density is filled in below
    allf = np.empty((n, 4), dtype=_F32)
    allf[:, :3] = feats
    pl_log10p = _point_level_log10(allf, st.tail_surv, st.tail_sums, st.tail_total, seasonal_level, cfg)
    point_log10p = pl_log10p[:, 0]
    level_log10p = pl_log10p[:, 1]
    # density: a short average of the point/level surprise (Numenta's anomaly likelihood averages
    # raw scores the same way), calibrated by its own history like the other features
    surprise = vmin(-np.minimum(point_log10p, level_log10p), cfg.density_cap)
    dens = st.density + _F32(cfg.density_rate) * (surprise - st.density)
    st.density = select(tracked, dens, st.density).astype(_F32, copy=False)
    dfeat = log2(st.density + _TINY)[:, None]
    row = row_size(cfg)
    surv, sums = st.tail_surv.reshape(n, 4, row), st.tail_sums.reshape(n, 4, row)
    den_base = row_bases(n, 1, 4, 3, row)
    den_log10p = survival_log10(
        dfeat,
        st.tail_surv.reshape(-1),
        st.tail_sums.reshape(-1),
        den_base,
        st.tail_total[:, 3:],
        cfg,
        cfg.density_lo,
    )
    den_log10p = select(st.tail_total[:, 3:] >= _F32(cfg.tail_min_count), den_log10p, _F32(0.0))
    allf[:, 3] = dfeat[:, 0]
    active = np.stack([tracked, tracked, tracked & has_seas, tracked], axis=1)
    update_tails(allf, surv, sums, st.tail_total, active, _lo_edges(cfg), cfg)
    due = decay_due(st.n)  # every histogram of a series decays at the same points
    renormalise(surv, st.tail_total, due, cfg, sums)

    same = has_prev & (np.abs(xr - st.x_last) <= eps)
    stuck_log10 = _stuck_log10(st, same, has_prev, due, cfg)
    # excursion: how long the level has stayed in its own 1/excursion_odds tail, against the
    # series' finished excursions (a drift, a sag, a slow leak last far longer than weather)
    away = tracked & (level_log10p <= _F32(-np.log10(cfg.excursion_odds)))
    st.ex_run, ex_log10 = _run_log10(
        st.ex_run, st.ex_surv, st.ex_total, away, tracked, due, cfg, 1, cfg.tail_beyond_log10 * cfg.tail_step
    )

    # Bonferroni over the five tests, -log10 p to [0, 1]; report only what exceeds recent surprise
    log10p = np.minimum(
        np.minimum(np.minimum(point_log10p, level_log10p), np.minimum(den_log10p[:, 0], stuck_log10)),
        ex_log10,
    )
    # alarms per day, not per point: a series sampled every minute tries 1,440 times a day to look
    # surprising, an hourly one 24 times; a partial multiplicity correction (points per day to the
    # power day_power) keeps fast series from raising more false alarms per day than slow ones
    per_day = vmax(_F32(DAY_S) / vmax(st.dt_typ, 1.0), 1.0)
    log10p = log10p + _F32(cfg.day_power) * log10(per_day)
    raw = np.clip(-(log10p + _F32(np.log10(5.0))) / _F32(cfg.score_log10_full), 0.0, 1.0)
    raw = select((st.n >= cfg.warmup_points) & tracked, raw, _F32(0.0)).astype(_F32, copy=False)
    score = np.where(raw > st.peak, raw, _F32(0.0))
    st.peak = np.maximum(st.peak * _F32(cfg.onset_decay), raw)

    learn(st, fc, xr, abs_err, k)
    st.x_last = xr
    st.t_last = t
    st.n = st.n + _F32(1.0)
    return np.clip(score, 0.0, 1.0).astype(_F32, copy=False)


_PAIRS: dict[int, np.ndarray] = {}
_SECOND = np.array([0, 1], dtype=np.intp)


def _pair_hists(n: int, seasonal_level: np.ndarray) -> np.ndarray:
    """(N, 2) flat indices into the (N, 4) histogram rows of the point test's histogram and the
    level test's: the seasonal level's (2) where ``seasonal_level``, else the mean level's (1)."""
    pairs = _PAIRS.get(n)
    if pairs is None:
        if len(_PAIRS) > 64:
            _PAIRS.clear()
        pairs = _PAIRS[n] = np.arange(n, dtype=np.intp)[:, None] * 4 + _SECOND
        pairs.flags.writeable = False
    if not seasonal_level.any():
        return pairs
    out: np.ndarray = pairs + seasonal_level[:, None] * _SECOND
    return out


def _point_level_log10(
    allf: np.ndarray,
    tail_surv: np.ndarray,
    tail_sums: np.ndarray,
    tail_total: np.ndarray,
    seasonal_level: np.ndarray,
    cfg: DetectorConfig,
) -> np.ndarray:
    """log10 p of the point test and the level test, (N, 2), from the (N, 4) histogram features
    ``allf`` (the first three filled in), each against its own histogram: the level reads the
    seasonal level's where ``seasonal_level`` (the series' best slow baseline), else the mean's.

    Only the histogram each test uses is read (the seasonal level's p-value of every series was
    computed before, and the mean's where the seasonal one was used: a third more lookups).
    """
    hist = _pair_hists(len(allf), seasonal_level)
    tot = tail_total.reshape(-1)[hist]
    log10p = survival_log10(
        allf.reshape(-1)[hist],
        tail_surv.reshape(-1),
        tail_sums.reshape(-1),
        hist * row_size(cfg),
        tot,
        cfg,
        cfg.tail_lo,
    )
    # no p-value from a histogram that has seen too little
    out: np.ndarray = select(tot >= _F32(cfg.tail_min_count), log10p, _F32(0.0))
    return out


def _intervals(st: AnomalyState, t: np.ndarray, has_prev: np.ndarray) -> np.ndarray:
    """Update the typical sampling interval; returns how many of them passed since the previous
    point (float32, 1 .. max_gap_steps)."""
    cfg = st.cfg
    dt = select(has_prev, t - st.t_last, 0.0)
    known = st.dt_typ > 0
    moving = has_prev & (dt > 0)
    safe_typ = select(known, st.dt_typ, _F32(1.0))  # read only
    q = dt / safe_typ
    # a series sampled exactly at its typical interval keeps it (log(1) = 0: the update below
    # would return it unchanged), so regular sampling skips the log/exp over all series
    if (moving & ~(known & (q == 1.0))).any():
        ratio = np.where(known & moving, q, 1.0)
        grown = st.dt_typ * np.exp(cfg.interval_rate * np.clip(np.log(ratio), -1.0, 1.0))
        st.dt_typ = np.where(moving, np.where(known, grown, dt), st.dt_typ).astype(_F32, copy=False)
        q = dt / np.where(st.dt_typ > 0, st.dt_typ, _F32(1.0))
    elif (q == 1.0).all():  # every series one interval on: the clip below would give ones
        return _ones(len(q))
    k: np.ndarray = np.clip(q, 1.0, cfg.max_gap_steps).astype(_F32, copy=False)
    return k


_ONES: dict[int, np.ndarray] = {}


def _ones(n: int) -> np.ndarray:
    """``n`` float32 ones (read-only, kept per length): the interval count of regular sampling."""
    out = _ONES.get(n)
    if out is None:
        if len(_ONES) > 64:
            _ONES.clear()
        out = _ONES[n] = np.ones(n, dtype=_F32)
        out.flags.writeable = False
    return out


def _best_seasonal(err_usable: np.ndarray) -> np.ndarray:
    """``argmin(np.where(SEASONAL, err_usable, inf), axis=1)`` from the two seasonal columns
    (an argmin over six columns per series cost five times as much).

    ``argmin`` picks the first NaN if any, else the first smallest value: the daily predictor
    on a NaN or a tie, the weekly one when its error is smaller or NaN (and the daily one's is
    not), and column 0 when both are inf (so is every other column).
    """
    e_d, e_w = err_usable[:, _I_DAILY], err_usable[:, _I_WEEKLY]
    weekly = (e_w < e_d) | ((e_w != e_w) & (e_d == e_d))
    out: np.ndarray = np.where(weekly, _I_WEEKLY, _I_DAILY)
    out[(e_d == np.inf) & (e_w == np.inf)] = 0
    return out


def _seasonal_is_best_slow(err_usable: np.ndarray) -> np.ndarray:
    """Whether ``argmin`` over the slow predictors (mean, daily, weekly) of ``err_usable`` (inf
    where not usable) picks a seasonal one, from three columns instead of an argmin per series.

    ``argmin`` returns the first NaN if any, else the first smallest value (the mean on a tie),
    and column 0 (not slow) when every slow error is inf: it is seasonal exactly when the mean's
    error is not NaN and is not <= the smaller seasonal one (or that one is NaN).
    """
    e_mean = err_usable[:, _I_MEAN]
    e_seas = np.minimum(err_usable[:, _I_DAILY], err_usable[:, _I_WEEKLY])  # NaN if either is
    out: np.ndarray = ~(e_seas >= e_mean) & (e_mean == e_mean)
    return out


def _stuck_log10(
    st: AnomalyState, same: np.ndarray, has_prev: np.ndarray, due: np.ndarray, cfg: DetectorConfig
) -> np.ndarray:
    """log10 P(a run of repeated values at least this long), from the series' finished runs.

    Every change of value ends a run (a series that never repeats ends a run of length 0 at each
    point). A sensor that routinely holds its value (quantised, idle) is not flagged, one that
    never repeats is flagged after a few identical readings, and a series constant since it
    started has no finished run to compare with, so it is never flagged.
    """
    st.run, log10p = _run_log10(
        st.run,
        st.run_surv,
        st.run_total,
        same,
        has_prev,
        due,
        cfg,
        cfg.stuck_min_run,
        cfg.stuck_beyond_log10,
    )
    return log10p


def _run_log10(
    run0: np.ndarray,
    surv2: np.ndarray,
    total1: np.ndarray,
    on: np.ndarray,
    counted: np.ndarray,
    due: np.ndarray,
    cfg: DetectorConfig,
    min_run: int,
    beyond: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Length of the current run of ``on`` points and log10 P(a run at least this long).

    The survival histogram ``surv2`` (N, bins) of log2(run length + 1) counts finished runs: a
    point where ``counted`` and not ``on`` ends a run (of length 0 when the previous point was
    not ``on`` either). Returns the new run lengths and the log10 p-values (0 when not ``on`` or
    shorter than ``min_run``); updates the histogram in place (decayed where ``due``). Only the
    series in a run long enough are looked up (usually a few: every series was looked up
    before, 0.16 ms per test per step for 5,000 series; the values are the same).
    """
    any_on = bool(on.any())
    if any_on:
        run = np.where(on, run0 + _F32(1.0), _F32(0.0)).astype(_F32, copy=False)
    else:  # no series in a run (the usual case)
        run = np.zeros(len(run0), dtype=_F32)
    surv = surv2.reshape(len(run), 1, -1)
    total = total1.reshape(-1, 1)
    log10p = np.zeros(len(run), dtype=_F32)
    if any_on:
        (look,) = np.nonzero(on & (run >= _F32(min_run)))
        if len(look):
            cur = np.log2(run[look] + _F32(1.0))[:, None]
            at = (look * surv.shape[-1])[:, None]
            log10p[look] = exceedance_at(cur, surv2.reshape(-1), at, total1[look][:, None], cfg, 0.0, beyond)[
                :, 0
            ]
    _count_finished_runs(run0, surv, total, counted & ~on, due, cfg)
    return run, log10p


def _count_finished_runs(
    run0: np.ndarray,
    surv: np.ndarray,
    total: np.ndarray,
    ended: np.ndarray,
    due: np.ndarray,
    cfg: DetectorConfig,
) -> None:
    """Count the runs that end at this point (previous lengths ``run0``) in the (N, 1, bins)
    survival histogram and (N, 1) totals, then decay the series that are ``due``."""
    # a finished run of length 0 (the usual case) only reaches the first edge
    if ended.all():  # every series (no repeat, no excursion): a same-type add
        surv[:, 0, 0] += _F32(1.0)
        total[:, 0] += _F32(1.0)
    else:
        surv[:, 0, 0] += ended
        total[:, 0] += ended
    longer = ended & (run0 > 0)
    if longer.any():
        rows = np.nonzero(longer)[0]
        done = np.log2(run0[rows] + _F32(1.0))[:, None]
        mask = done[..., None] >= edges(cfg, 0.0)
        mask[..., 0] = False  # already counted above
        surv[rows] += mask
    renormalise(surv, total, due, cfg)


def update(st: AnomalyState, times: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Feed ``T`` new points to each of the ``N`` series of ``st``; returns ``(N, T)`` scores.

    ``times`` (Unix seconds) and ``values`` are ``(N, T)`` arrays, or ``(N,)`` for one point
    each (then the result is ``(N,)``). A NaN value is a missing point: it is skipped (state
    unchanged) and scored NaN. Timestamps of a series must not decrease.
    """
    t2 = np.asarray(times, dtype=np.float64)
    x2 = np.asarray(values)
    if x2.dtype != np.float32:
        x2 = x2.astype(np.float64, copy=False)
    one = t2.ndim == 1
    if one:
        t2, x2 = t2[:, None], x2[:, None]
    if t2.shape != x2.shape or t2.ndim != 2 or t2.shape[0] != st.n_series:
        raise ValueError(
            f"times {np.shape(times)} and values {np.shape(values)} must both be "
            f"({st.n_series}, T) or ({st.n_series},)"
        )
    n_s, n_t = t2.shape
    if n_t >= _BLOCK and n_s > _SERIES_BLOCK:
        out = np.empty(t2.shape, dtype=_F32)
        size = -(-n_s // -(-n_s // _SERIES_BLOCK))  # equal blocks of at most _SERIES_BLOCK
        for a in range(0, n_s, size):
            rows = slice(a, a + size)
            sub = st.select(rows)
            out[rows] = _advance(sub, t2[rows], x2[rows])
            st.assign(rows, sub)
    else:
        out = _advance(st, t2, x2)
    return out[:, 0].copy() if one else out


def _advance(st: AnomalyState, t2: np.ndarray, x2: np.ndarray) -> np.ndarray:
    """Run :func:`step` over the columns of ``(N, T)`` times and values; ``(N, T)`` scores."""
    n_t = t2.shape[1]
    out = np.empty(t2.shape, dtype=_F32)
    # time-major blocks: each step reads one contiguous row; blocks keep the transposes in cache
    for j0 in range(0, n_t, _BLOCK):
        tb = _transposed(t2[:, j0 : j0 + _BLOCK])
        xb = _transposed(x2[:, j0 : j0 + _BLOCK])
        ob = np.full(xb.shape, np.nan, dtype=_F32)
        for j in range(xb.shape[0]):
            ok = np.isfinite(xb[j]) & np.isfinite(tb[j])
            if ok.all():
                ob[j] = step(st, tb[j], xb[j].astype(np.float64))
            elif ok.any():
                c = int(ok.argmin())  # series padded at the end of a ragged batch (longest first):
                sel: np.ndarray | slice  # the valid ones are a prefix, copied as one slice
                sel = slice(0, c) if c > 0 and not ok[c:].any() else np.nonzero(ok)[0]
                sub = st.select(sel)
                ob[j, sel] = step(sub, tb[j, sel], xb[j, sel].astype(np.float64))
                st.assign(sel, sub)
        for a in range(0, t2.shape[0], _TRANSPOSE_ROWS):
            out[a : a + _TRANSPOSE_ROWS, j0 : j0 + _BLOCK] = ob[:, a : a + _TRANSPOSE_ROWS].T
    return out


#: series transposed at a time: a (256, 64) float64 tile (128 kB) is read and written while it
#: is in the cache (the whole (5,000, 64) block at once: 2.84 against 0.90 ms on the benchmark VM)
_TRANSPOSE_ROWS = 256


def _transposed(a: np.ndarray) -> np.ndarray:
    """C-contiguous ``a.T`` of an (N, T) view, copied in tiles of :data:`_TRANSPOSE_ROWS` series."""
    out = np.empty(a.shape[::-1], dtype=a.dtype)
    for r in range(0, a.shape[0], _TRANSPOSE_ROWS):
        out[:, r : r + _TRANSPOSE_ROWS] = a[r : r + _TRANSPOSE_ROWS].T
    return out


def score_series(
    timestamps: np.ndarray, values: np.ndarray, cfg: DetectorConfig = DEFAULT_CONFIG
) -> np.ndarray:
    """Anomaly score in [0, 1] of every point of one series (NaN where the value is missing).

    ``timestamps``: Unix seconds (numbers) or ``datetime64``, non-decreasing; ``values``: numbers.
    """
    t = np.asarray(timestamps)
    if np.issubdtype(t.dtype, np.datetime64):
        t = t.astype("datetime64[ns]").astype(np.int64) / 1e9
    t = np.asarray(t, dtype=np.float64)
    x = np.asarray(values, dtype=np.float64)
    if t.ndim != 1 or t.shape != x.shape:
        raise ValueError(f"timestamps {t.shape} and values {x.shape} must be 1-D of equal length")
    out: np.ndarray = update(AnomalyState.new(1, cfg), t[None, :], x[None, :])[0]
    return out
