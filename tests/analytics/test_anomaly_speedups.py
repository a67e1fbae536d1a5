"""Each computation of the detector replaced for speed equals the one it replaced (kept below,
verbatim but for names), bit for bit, on random inputs with NaN, inf, empty histograms, values
below and beyond the grid, irregular sampling and gaps (docs/benchmarks.md, "Speed, sixth
session"). The whole detector is also compared with the plain reference in
test_anomaly_reference.py."""

from __future__ import annotations

import numpy as np
import pytest

from analytics.anomaly import AnomalyState, DetectorConfig
from analytics.anomaly import detector as det
from analytics.anomaly.baseline import SEASONAL, SLOW
from analytics.anomaly.state import PREDICTORS
from analytics.anomaly.tails import LAZY, decay_due, edges, exceedance_at, renormalise, row_bases

F32 = np.float32
HALF = F32(0.5)
CFG = DetectorConfig()


def _old_exceedance_log10(logf, surv, total, cfg, lo_edge, beyond_log10=None, first=0):  # type: ignore[no-untyped-def]
    """tails.exceedance_log10 before the sixth session (record counted over every edge)."""
    k = cfg.tail_bins
    if beyond_log10 is None:
        beyond_log10 = cfg.tail_beyond_log10
    n, nf = logf.shape
    pos = (logf - F32(lo_edge)) / F32(cfg.tail_step)
    lo_f = np.floor(np.clip(pos, 0, k - 1))
    lo = lo_f.astype(np.intp)
    hi = np.minimum(lo + 1, k - 1)
    flat = surv.reshape(-1)
    base = (np.arange(n, dtype=np.intp)[:, None] * surv.shape[1] + (first + np.arange(nf))) * k
    s_lo = flat[base + lo]
    num = np.log10(s_lo + HALF)
    s_hi = flat[base + hi]
    past = (s_hi < HALF) | (pos > k - 1)
    step = F32(beyond_log10)
    num -= np.where(past, np.maximum(pos - lo_f, F32(0.0)) * step, F32(0.0))
    deep = past & (s_lo < HALF)
    if deep.any():
        r, c = np.nonzero(deep)
        record = np.count_nonzero(surv[r, first + c] >= HALF, axis=-1) - 1
        num[r, c] -= (lo[r, c] - np.maximum(record, 0)) * step
    tot = total[:, first : first + nf]
    below = pos < 0
    if below.any():
        r, c = np.nonzero(below)
        num[r, c] = np.log10(tot[r, c] + HALF)
    return np.minimum(num - np.log10(tot + F32(1.0)), F32(0.0)).astype(F32, copy=False)


def _survival(rng: np.random.Generator, n: int, nf: int, empty: float) -> tuple[np.ndarray, np.ndarray]:
    """Histograms as the detector builds them: counted values, decayed; some left empty."""
    k = CFG.tail_bins
    surv = np.zeros((n, nf, k), dtype=F32)
    total = np.zeros((n, nf), dtype=F32)
    for _ in range(60):
        reach = rng.integers(0, k + 1, size=(n, nf)) * (rng.random((n, nf)) < 0.7)
        surv += (np.arange(k) < reach[..., None]).astype(F32)
        total += F32(1.0)
        if rng.random() < 0.2:
            surv *= F32(0.9)
            total *= F32(0.9)
    gone = rng.random((n, nf)) < empty
    surv[gone] = 0.0
    return surv, total


def _exceedance_log10(logf, surv, total, cfg, lo_edge, beyond_log10, first=0):  # type: ignore[no-untyped-def]
    """exceedance_at over features ``first ..`` of ``surv`` (N, F_all, bins)."""
    n, nf = logf.shape
    base = row_bases(n, nf, surv.shape[1], first, cfg.tail_bins)
    return exceedance_at(
        logf, surv.reshape(-1), base, total[:, first : first + nf], cfg, lo_edge, beyond_log10
    )


@pytest.mark.parametrize("empty", [0.0, 0.05, 0.6, 1.0])  # few or many empty histograms
@pytest.mark.parametrize("first", [0, 1])
def test_exceedance_equals_previous(empty: float, first: int) -> None:
    """The plain survival read (the run-length tests') equals the read before the sixth session."""
    rng = np.random.default_rng(int(empty * 100) + first)
    n, nf_all = 400, 4
    surv, total = _survival(rng, n, nf_all, empty)
    nf = nf_all - first
    logf = rng.uniform(-12.0, 30.0, size=(n, nf)).astype(F32)
    logf[::11] = F32(-40.0)  # below the grid
    logf[::7, 0] = F32(np.inf)  # beyond it
    for lo_edge, beyond in ((CFG.tail_lo, 0.375), (0.0, 0.0), (CFG.density_lo, 0.5)):
        with np.errstate(invalid="ignore"):  # inf beyond the grid times a step of 0
            want = _old_exceedance_log10(logf, surv, total, CFG, lo_edge, beyond, first)
            got = _exceedance_log10(logf, surv, total, CFG, lo_edge, beyond, first)
        np.testing.assert_array_equal(got, want)
        assert got.dtype == want.dtype


def test_decay_due_equals_mod() -> None:
    n = np.concatenate([np.arange(0, 70_000, dtype=F32), F32([2**24 - 1, 2**24, 2**25, 1e30])])
    np.testing.assert_array_equal(decay_due(n), np.mod(n, LAZY) == LAZY - 1)


def test_seasonal_is_best_slow_equals_argmin() -> None:
    rng = np.random.default_rng(3)
    pool = F32([0.0, 0.5, 1.0, 2.0, np.inf, np.nan])
    err = rng.choice(pool, size=(20_000, len(PREDICTORS)))  # every tie, NaN and inf pattern
    err[:5000] = rng.random((5000, len(PREDICTORS))).astype(F32)
    want = SEASONAL[np.argmin(np.where(SLOW, err, np.inf), axis=1)]
    np.testing.assert_array_equal(det._seasonal_is_best_slow(err), want)


def _old_run_log10(run0, surv2, total1, on, counted, n, cfg, min_run, beyond):  # type: ignore[no-untyped-def]
    """detector._run_log10 before the sixth session (every series looked up)."""
    run = np.where(on, run0 + F32(1.0), F32(0.0)).astype(F32)
    surv = surv2.reshape(len(run), 1, -1)
    total = total1.reshape(-1, 1)
    if on.any():
        cur = np.log2(run + F32(1.0))[:, None]
        log10p = _old_exceedance_log10(cur, surv, total, cfg, 0.0, beyond)[:, 0]
        log10p = np.where(on & (run >= F32(min_run)), log10p, F32(0.0))
    else:
        log10p = np.zeros(len(run), dtype=F32)
    return run, log10p.astype(F32)


def _old_count_finished_runs(run0, surv, total, ended, due, cfg):  # type: ignore[no-untyped-def]
    """detector._count_finished_runs before the seventh session (always a bool add)."""
    surv[:, 0, 0] += ended
    total[:, 0] += ended
    longer = ended & (run0 > 0)
    if longer.any():
        rows = np.nonzero(longer)[0]
        done = np.log2(run0[rows] + F32(1.0))[:, None]
        mask = done[..., None] >= edges(cfg, 0.0)
        mask[..., 0] = False
        surv[rows] += mask
    renormalise(surv, total, due, cfg)


def _old_run_log10_counted(run0, surv2, total1, on, counted, n, cfg, min_run, beyond):  # type: ignore[no-untyped-def]
    """:func:`_old_run_log10` and the previous count of finished runs."""
    run, log10p = _old_run_log10(run0, surv2, total1, on, counted, n, cfg, min_run, beyond)
    surv = surv2.reshape(len(run), 1, -1)
    _old_count_finished_runs(run0, surv, total1.reshape(-1, 1), counted & ~on, decay_due(n), cfg)
    return run, log10p


@pytest.mark.parametrize("all_counted", [False, True])  # True: every run ends (a same-type add)
@pytest.mark.parametrize("p_on", [0.0, 0.01, 0.5, 1.0])
def test_run_test_equals_previous(p_on: float, all_counted: bool) -> None:
    rng = np.random.default_rng(int(p_on * 100))
    n = 500
    surv, total = _survival(rng, n, 1, 0.2)
    surv, total = surv[:, 0], total[:, 0]
    run0 = rng.integers(0, 300, n).astype(F32) * (rng.random(n) < 0.5)
    on = rng.random(n) < p_on
    counted = (rng.random(n) < 0.9) | all_counted
    npts = rng.integers(0, 1000, n).astype(F32)
    npts[:100] = 63  # due for the decay
    for min_run in (1, 5):
        s_old, t_old, s_new, t_new = surv.copy(), total.copy(), surv.copy(), total.copy()
        want = _old_run_log10_counted(run0, s_old, t_old, on, counted, npts, CFG, min_run, 0.375)
        got = det._run_log10(run0, s_new, t_new, on, counted, decay_due(npts), CFG, min_run, 0.375)
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g, w)
            assert g.dtype == w.dtype
        np.testing.assert_array_equal(s_new, s_old)
        np.testing.assert_array_equal(t_new, t_old)


def _old_intervals(st: AnomalyState, t: np.ndarray, has_prev: np.ndarray) -> np.ndarray:
    """The interval update of detector.step before the sixth session (always log/exp)."""
    cfg = st.cfg
    dt = np.where(has_prev, t - st.t_last, 0.0)
    known = st.dt_typ > 0
    moving = has_prev & (dt > 0)
    safe_typ = np.where(known, st.dt_typ, F32(1.0))
    ratio = np.where(known & moving, dt / safe_typ, 1.0)
    grown = st.dt_typ * np.exp(cfg.interval_rate * np.clip(np.log(ratio), -1.0, 1.0))
    st.dt_typ = np.where(moving, np.where(known, grown, dt), st.dt_typ).astype(F32)
    k: np.ndarray = np.clip(dt / np.where(st.dt_typ > 0, st.dt_typ, F32(1.0)), 1.0, cfg.max_gap_steps).astype(
        F32
    )
    return k


@pytest.mark.parametrize("jitter", [0.0, 1e-9, 0.3])  # regular, nearly regular, irregular
def test_intervals_equal_previous(jitter: float) -> None:
    rng = np.random.default_rng(5)
    n = 300
    old, new = AnomalyState.new(n), AnomalyState.new(n)
    t = 1.7e9 + rng.uniform(0, 1e5, n)
    dt = rng.choice([60.0, 300.0, 3600.0], n)
    for i in range(40):
        has_prev = np.full(n, i > 0) & (rng.random(n) < 0.95)
        for st in (old, new):
            st.t_last = np.where(has_prev, t, np.nan)
        step = dt * (1.0 + jitter * rng.standard_normal(n))
        step[rng.random(n) < 0.05] *= rng.uniform(0, 300)  # gaps, and repeated timestamps (0)
        t = t + step
        np.testing.assert_array_equal(det._intervals(new, t, has_prev), _old_intervals(old, t, has_prev))
        np.testing.assert_array_equal(new.dt_typ, old.dt_typ)


def test_rate_of_one_interval_equals_previous() -> None:
    from analytics.anomaly.baseline import rate

    rng = np.random.default_rng(9)
    for k in (np.ones(700, dtype=F32), rng.uniform(1.0, 50.0, 700).astype(F32)):
        for r in (CFG.level_rate, CFG.offset_rate):
            want = (-np.expm1(k * np.log1p(-r))).astype(F32)
            np.testing.assert_array_equal(rate(k, r), want)
            np.testing.assert_array_equal(rate(k, r), want)  # the kept value, second call


@pytest.mark.parametrize("common", [True, False])
def test_bin_index_equals_previous(common: bool) -> None:
    from analytics.anomaly.baseline import _bin_index, row_offsets

    rng = np.random.default_rng(11)
    n = 600
    t = rng.uniform(-1e6, 2e9, n)
    if common:
        t[:] = t[0]
    bins = rng.choice(F32([1, 24, 96, 288, 168]), n)
    for period, width in ((86_400.0, 288), (604_800.0, 168)):
        b = np.floor(np.mod(t, period) * (bins / period)).astype(np.intp)
        want = np.clip(b, 0, width - 1) + row_offsets(n, width)
        np.testing.assert_array_equal(_bin_index(t, period, bins, width), want)


@pytest.mark.parametrize("empty", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("p_seasonal", [0.0, 0.4, 1.0])
def test_point_and_level_equal_all_three_histograms(empty: float, p_seasonal: float) -> None:
    """The point and level p-values read from each test's own histogram equal reading all three
    histograms (point, mean level, seasonal level), then choosing the level per series, each zero
    where its histogram has counted too little."""
    from analytics.anomaly.tails import row_size, survival_log10, update_tails

    rng = np.random.default_rng(int(empty * 10 + p_seasonal * 100))
    n, row = 600, row_size(CFG)
    surv = np.zeros((n, 4, row), dtype=F32)
    sums = np.zeros((n, 4, row), dtype=F32)
    total = np.zeros((n, 4), dtype=F32)
    lo = np.array([CFG.tail_lo] * 3 + [CFG.density_lo], dtype=F32)
    for _ in range(60):
        vals = rng.normal(rng.uniform(-2.0, 6.0, size=(n, 1)), 2.0, size=(n, 4)).astype(F32)
        update_tails(vals, surv, sums, total, rng.random((n, 4)) < 0.8, lo, CFG)
    gone = rng.random((n, 4)) < empty
    surv[gone] = 0.0
    sums[gone] = 0.0
    total[rng.random((n, 4)) < 0.2] = F32(CFG.tail_min_count) * rng.uniform(0.5, 1.5)
    total[::13] = F32(CFG.tail_min_count)  # exactly enough
    feats = rng.uniform(-12.0, 30.0, size=(n, 3)).astype(F32)
    feats[::11] = F32(-40.0)  # below the grid
    feats[::7, 1] = F32(np.inf)  # beyond it
    feats[::5, 2] = F32(-np.inf)  # a zero residual
    seasonal_level = rng.random(n) < p_seasonal
    with np.errstate(invalid="ignore"):
        pls = survival_log10(
            feats,
            surv.reshape(-1),
            sums.reshape(-1),
            row_bases(n, 3, 4, 0, row),
            total[:, :3],
            CFG,
            CFG.tail_lo,
        )
    pls = np.where(total[:, :3] >= F32(CFG.tail_min_count), pls, F32(0.0))
    want_level = np.where(seasonal_level, pls[:, 2], pls[:, 1])
    allf = np.full((n, 4), np.nan, dtype=F32)
    allf[:, :3] = feats
    with np.errstate(invalid="ignore"):
        got = det._point_level_log10(
            allf, surv.reshape(n, -1), sums.reshape(n, -1), total, seasonal_level, CFG
        )
    np.testing.assert_array_equal(got[:, 0], pls[:, 0])
    np.testing.assert_array_equal(got[:, 1], want_level)
    assert got.dtype == pls.dtype


def test_best_seasonal_equals_argmin() -> None:
    rng = np.random.default_rng(13)
    pool = F32([0.0, 0.5, 1.0, 2.0, np.inf, -np.inf, np.nan])
    err = rng.choice(pool, size=(20_000, len(PREDICTORS)))  # every tie, NaN and inf pattern
    err[:5000] = rng.random((5000, len(PREDICTORS))).astype(F32)
    want = np.argmin(np.where(SEASONAL, err, np.inf), axis=1)
    np.testing.assert_array_equal(det._best_seasonal(err), want)


def test_intervals_of_regular_sampling_are_ones() -> None:
    """Every series exactly one typical interval on: the kept ones, as the clip gave."""
    rng = np.random.default_rng(15)
    n = 300
    old, new = AnomalyState.new(n), AnomalyState.new(n)
    dt = rng.choice([60.0, 300.0, 3600.0], n)
    t = 1.7e9 + rng.uniform(0, 1e5, n)
    for i in range(6):
        has_prev = np.full(n, i > 0)
        for st in (old, new):
            st.t_last = np.where(has_prev, t, np.nan)
        t = t + dt
        got, want = det._intervals(new, t, has_prev), _old_intervals(old, t, has_prev)
        np.testing.assert_array_equal(got, want)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(new.dt_typ, old.dt_typ)
    assert got is det._ones(n)


def _old_forecast_learn(st: AnomalyState, t: np.ndarray, x: np.ndarray):  # type: ignore[no-untyped-def]
    """baseline.forecast's predictions and readiness and baseline.learn before the seventh
    session (stacked predictions, each profile bin read twice)."""
    from analytics.anomaly.baseline import _bin_index, rate
    from analytics.anomaly.config import DAY_S, WEEK_S

    cfg = st.cfg
    has_prev = st.n > 0
    learning = st.bins_d > 0
    since = np.where(learning, t - st.season_t0, -1.0)
    idx_d = _bin_index(t, DAY_S, st.bins_d, cfg.daily_bins)
    idx_w = _bin_index(t, WEEK_S, st.bins_w, cfg.weekly_bins)
    pd = st.daily.reshape(-1)[idx_d]
    pw = pd + st.weekly.reshape(-1)[idx_w]
    preds = np.stack(
        [
            st.x_last,
            st.mean,
            pd + st.off_d,
            pw + st.off_w,
            st.x_last + (pd - st.prev_d),
            st.x_last + (pw - st.prev_w),
        ],
        axis=1,
    )
    ready_d = since >= DAY_S
    ready_w = since >= WEEK_S
    ready = np.stack([has_prev, has_prev, ready_d, ready_w, ready_d, ready_w], axis=1)
    trusted_d = since >= 2 * DAY_S
    trusted_w = since >= 2 * WEEK_S
    trusted = np.stack([has_prev, has_prev, trusted_d, trusted_w, trusted_d, trusted_w], axis=1)
    usable = trusted & (st.err_n >= F32(cfg.min_error_points))
    xr = (x - st.x_ref).astype(F32)
    abs_err = np.abs(xr[:, None] - preds)
    k = np.clip(np.where(np.isfinite(st.t_last), t - st.t_last, 0.0) / 60.0, 1.0, 1000.0).astype(F32)
    # learn
    st.err_n = np.where(ready, st.err_n + F32(1.0), st.err_n).astype(F32)
    a_err = np.maximum(F32(cfg.error_rate), F32(1.0) / np.maximum(st.err_n, F32(1.0)))
    st.err = np.where(ready, st.err + a_err * (abs_err - st.err), st.err).astype(F32)
    a_lvl = np.maximum(rate(k, cfg.level_rate), F32(1.0) / (st.n + F32(1.0))).astype(F32)
    st.mean = (st.mean + a_lvl * (xr - st.mean)).astype(F32)
    a_off = np.maximum(rate(k, cfg.offset_rate), F32(1.0) / (st.n + F32(1.0))).astype(F32)
    st.off_d = np.where(ready_d, st.off_d + a_off * ((xr - pd) - st.off_d), F32(0.0)).astype(F32)
    st.off_w = np.where(ready_w, st.off_w + a_off * ((xr - pw) - st.off_w), F32(0.0)).astype(F32)
    st.prev_d = pd
    st.prev_w = pw
    for table, err, idx, ready_p, bins, period in (
        (st.daily, xr - pd, idx_d, ready_d, st.bins_d, DAY_S),
        (st.weekly, xr - pw, idx_w, ready_w, st.bins_w, WEEK_S),
    ):
        per_bin = np.maximum(
            (period / np.maximum(bins, F32(1.0))) / np.maximum(st.dt_typ, F32(1e-3)), F32(1.0)
        )
        a = np.where(ready_p, F32(cfg.season_rate) / per_bin.astype(F32), F32(1.0))
        a = np.where(learning, a, F32(0.0)).astype(F32)
        table.reshape(-1)[idx] += a * err
    return preds, ready, usable, abs_err, xr, k


@pytest.mark.parametrize("lockstep", [True, False])
def test_forecast_and_learn_equal_previous(lockstep: bool) -> None:
    """Predictions (columns written in place), readiness and the learning step (each profile
    bin read once) equal the previous ones on states of series with gaps, irregular sampling,
    huge values and every age (before and after their profiles are ready)."""
    from analytics.anomaly.baseline import forecast, learn

    rng = np.random.default_rng(17 + lockstep)
    n = 400
    st = AnomalyState.new(n)
    dt = rng.choice([60.0, 300.0, 900.0, 3600.0], n)
    t = 1.7e9 + (0.0 if lockstep else 1.0) * rng.uniform(0, 1e5, n)
    dt[:] = 300.0 if lockstep else dt
    for i in range(1200):
        t = t + dt * (1.0 if lockstep else rng.choice([1.0, 1.0, 1.0, 0.5, 7.0], n))
        x = 10.0 ** rng.uniform(-2, 6, n) * (1 + 0.1 * np.sin(t / 13751.0)) + rng.standard_normal(n)
        x[rng.random(n) < 0.01] = 1e30
        if i % 97 == 0 or i > 1190:
            old = st.copy()
            has_prev = st.n > 0
            fc = forecast(st, t, has_prev)
            preds, ready, usable, abs_err, xr, k = _old_forecast_learn(old, t, x)
            for got, want in ((fc.preds, preds), (fc.ready, ready), (fc.usable, usable)):
                np.testing.assert_array_equal(got, want)
                assert got.dtype == want.dtype
            learn(st, fc, xr, abs_err, k)
            # the rest of a step, as the previous code would do it (fields learn leaves alone)
            for name in ("t_last", "n", "x_last"):
                setattr(st, name, getattr(old, name))
            for name, want_arr in old.arrays().items():
                np.testing.assert_array_equal(getattr(st, name), want_arr, err_msg=name)
        det.update(st, t, x)


@pytest.mark.parametrize("p_set", [0.0, 0.5, 1.0])
def test_select_and_offset_equal_where(p_set: float) -> None:
    """baseline.select (the array itself when every entry is set) and the seasonal offset update
    (zeros when no profile is ready) equal the np.where they replace, NaN and inf included."""
    from analytics.anomaly.baseline import _offset, select

    rng = np.random.default_rng(int(p_set * 10) + 21)
    n = 1000
    mask = rng.random(n) < p_set
    a = rng.choice(F32([0.0, -1.5, 2.0, np.inf, -np.inf, np.nan]), n)
    b = rng.standard_normal(n).astype(F32)
    for other in (b, F32(0.0), -1.0):
        want = np.where(mask, a, other)
        got = select(mask, a, other)
        np.testing.assert_array_equal(got, want)
        assert got.dtype == want.dtype and got.shape == want.shape
    off, a_off, err = b, rng.random(n).astype(F32), a
    want = np.where(mask, off + a_off * (err - off), F32(0.0)).astype(F32)
    got = _offset(mask, off, a_off, err)
    np.testing.assert_array_equal(got, want)
    assert got.dtype == want.dtype


def test_tail_update_in_blocks_equals_one_add(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ladder rows added block by block of series equal the previous single add of all of
    them (blocks of 7 series, and one block), with NaN features and inactive features."""
    from analytics.anomaly import tails

    rng = np.random.default_rng(23)
    n, k = 100, CFG.tail_bins
    row = tails.row_size(CFG)
    lo = np.array([CFG.tail_lo, CFG.tail_lo, CFG.tail_lo, CFG.density_lo], dtype=F32)
    logf = rng.uniform(-12.0, 30.0, size=(n, 4)).astype(F32)
    logf[::17, 1] = np.nan
    logf[::13, 0] = np.inf
    logf[::11, 2] = -np.inf
    active = rng.random((n, 4)) > 0.2
    surv0, total = _survival(rng, n, 4, 0.1)
    surv = np.zeros((n, 4, row), dtype=F32)
    surv[..., :k] = surv0
    # previous: one add of every series' ladder rows
    pos = (logf - lo) / F32(CFG.tail_step)
    reach = np.floor(np.clip(pos, -1.0, k - 1)) + F32(1.0)
    reach = np.where(~np.isnan(reach) & active, reach, F32(0.0))
    want_s = surv + np.tril(np.ones((k + 1, row), dtype=F32), -1).take(reach.astype(np.intp), axis=0)
    want_t = total + active
    for block_bytes in (7 * 4 * row * 4, 1 << 30):
        monkeypatch.setattr(tails, "_TAIL_BLOCK_BYTES", block_bytes)
        s, t, g = surv.copy(), total.copy(), np.zeros_like(surv)
        tails.update_tails(logf, s, g, t, active, lo, CFG)
        np.testing.assert_array_equal(s, want_s)
        np.testing.assert_array_equal(t, want_t)
