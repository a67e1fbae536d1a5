"""The vectorised detector against the plain, slow reference in naive_anomaly.py.

The reference shares no code with analytics.anomaly: it re-implements the method from its
description with Python loops, one series and one point at a time. Random inputs cover NaN and
inf values, gaps, irregular sampling, quantised and stuck stretches, diurnal series, scales from
1e-3 to 1e8 and several series of different rates advancing together.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from analytics.anomaly import AnomalyState, DetectorConfig, update
from tests.analytics import naive_anomaly

T0 = 1_717_200_000.0


def _random_batch(seed: int, n_series: int = 6, n: int = 1100) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    times = np.empty((n_series, n))
    values = np.empty((n_series, n))
    for i in range(n_series):
        dt = float(rng.choice([60.0, 300.0, 900.0, 3600.0]))
        steps = dt * rng.uniform(0.7, 1.3, n)
        steps[rng.integers(0, n, 4)] *= rng.uniform(5, 200, 4)  # gaps
        t = T0 + rng.uniform(0, 86_400) + np.cumsum(steps)
        scale = 10.0 ** rng.uniform(-3, 4)
        h = np.mod(t, 86_400) / 3600
        x = 10.0 ** rng.uniform(-2, 8) + scale * (
            3 * np.sin(2 * np.pi * h / 24) + np.cumsum(rng.normal(0, 0.05, n)) + rng.normal(0, 0.5, n)
        )
        if i % 3 == 1:
            x = np.round(x / scale, 1) * scale  # quantised: repeats are routine
        if i % 3 == 2:
            a = int(rng.integers(200, n - 100))
            x[a : a + 60] = x[a]  # a stuck stretch
        spikes = rng.integers(150, n, 5)
        x[spikes] += scale * rng.uniform(5, 40, 5)
        x[rng.integers(300, n)] += scale * 1e7  # beyond the histogram grid
        x[rng.random(n) < 0.04] = np.nan
        x[rng.integers(0, n, 3)] = rng.choice([np.inf, -np.inf])
        times[i], values[i] = t, x
    return times, values


@pytest.mark.parametrize("seed", [31, 32, 33])
def test_vectorised_detector_equals_slow_reference(seed: int) -> None:
    times, values = _random_batch(seed)
    vec = update(AnomalyState.new(times.shape[0]), times, values)
    ref = naive_anomaly.score_many(times, values)
    assert np.array_equal(np.isnan(vec), np.isnan(ref))
    assert np.array_equal(np.isnan(vec), ~np.isfinite(values))
    np.testing.assert_allclose(vec, ref, rtol=0, atol=1e-6)
    assert np.count_nonzero(ref > 0.05) >= 5  # the comparison covers real alarms, not only zeros


def test_reference_mirrors_every_constant() -> None:
    """The reference's constants are the detector's defaults, field for field (so a changed
    default is a changed method, and the reference must change with it)."""
    ours = dataclasses.asdict(DetectorConfig())
    ref = dataclasses.asdict(naive_anomaly.Cfg())
    assert ours == ref


def test_reference_catches_a_perturbed_constant() -> None:
    """The comparison is sharp: a 10 % change of one rate (the seasonal profiles') shows up."""
    times, values = _random_batch(31, n_series=3, n=800)
    ref = naive_anomaly.score_many(times, values)
    vec = update(AnomalyState.new(3, DetectorConfig(season_rate=0.165)), times, values)
    assert np.nanmax(np.abs(vec - ref)) > 1e-3


def test_tail_read_equals_lumped_reference_with_open_top() -> None:
    """The vectorised histogram read (window below the value over the bins' lumps; above the grid
    an exponential tail) equals the reference's loop over lumps, value for value, for histograms
    with many values beyond the top edge and queries across the whole grid, below and above it."""
    from analytics.anomaly.tails import LAZY, renormalise, row_bases, row_size, survival_log10, update_tails

    cfg = DetectorConfig()
    ref_cfg = naive_anomaly.Cfg()
    rng = np.random.default_rng(41)
    n, row = 400, row_size(cfg)
    top = cfg.tail_lo + cfg.tail_step * (cfg.tail_bins - 1)
    surv = np.zeros((n, 1, row), dtype=np.float32)
    sums = np.zeros((n, 1, row), dtype=np.float32)
    total = np.zeros((n, 1), dtype=np.float32)
    refs = [naive_anomaly.LumpHistogram(ref_cfg, cfg.tail_lo) for _ in range(n)]
    centre = rng.uniform(cfg.tail_lo, top + 4.0, size=n).astype(np.float32)
    for i in range(150):
        vals = (centre + rng.normal(0.0, 2.0, size=n)).astype(np.float32)
        far = rng.random(n) < 0.1
        vals[far] = (top + rng.exponential(1.5, size=np.count_nonzero(far))).astype(np.float32)
        update_tails(vals[:, None], surv, sums, total, np.ones(n, dtype=bool), np.float32([cfg.tail_lo]), cfg)
        for h, v in zip(refs, vals, strict=True):
            h.add(v)
        if i % LAZY == LAZY - 1:
            renormalise(surv, total, np.ones(n, dtype=bool), cfg, sums)
            for h in refs:
                h.forget()
    q = (np.float32(top) + rng.uniform(-3.0, 6.0, size=(n, 3))).astype(np.float32)
    q[::9, 0] = np.float32(cfg.tail_lo - 1.0)  # below the grid
    q[:, 2] = (centre + rng.normal(0.0, 3.0, size=n)).astype(np.float32)  # around the values
    base = np.broadcast_to(row_bases(n, 1, 1, 0, row), q.shape)
    with np.errstate(invalid="ignore"):
        got = survival_log10(
            q, surv.reshape(-1), sums.reshape(-1), base, total.repeat(3, axis=1), cfg, cfg.tail_lo
        )
    want = np.array([[refs[i].lumped_log10_tail(v) for v in q[i]] for i in range(n)], dtype=np.float32)
    above = np.count_nonzero(q > top)
    assert above > n  # the open top bin is read, not only the grid
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-5)
