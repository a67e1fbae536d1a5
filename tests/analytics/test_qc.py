"""Sensor QC: each vectorised test against its slow loop, QARTOD semantics, injected faults."""

from __future__ import annotations

import numpy as np
import pytest

from analytics import qc
from analytics.qc import checks
from analytics.qc.synthetic import air_temperature
from tests.analytics import naive_qc as naive

T0 = 1_717_200_000.0


def _random_batch(seed: int, n_series: int = 5, n: int = 120) -> tuple[np.ndarray, np.ndarray]:
    """Irregular times, coarse values (so flat runs happen), NaN gaps and ragged padding."""
    rng = np.random.default_rng(seed)
    t = T0 + np.cumsum(rng.choice([30.0, 60.0, 60.0, 90.0, 600.0, 7200.0], size=(n_series, n)), axis=1)
    t += rng.uniform(0, 5, size=t.shape).round(0)
    steps = rng.choice([0.0, 0.0, 0.0, 0.5, -0.5, 4.0, -4.0], size=(n_series, n))
    v = 20 + np.cumsum(steps, axis=1)
    v[rng.random(v.shape) < 0.08] = np.nan
    for i in range(1, n_series):  # ragged: pad the ends of some series
        cut = int(rng.integers(n // 2, n))
        t[i, cut:] = np.nan
        v[i, cut:] = np.nan
    return t, v


SEEDS = range(6)


@pytest.mark.parametrize("seed", SEEDS)
def test_gross_range_matches_loop(seed: int) -> None:
    t, v = _random_batch(seed)
    got = qc.gross_range(t, v, 5.0, 40.0, 10.0, 30.0)
    for i in range(t.shape[0]):
        np.testing.assert_array_equal(got[i], naive.gross_range(t[i], v[i], 5.0, 40.0, 10.0, 30.0))


def test_gross_range_bounds_per_series_and_open_sides() -> None:
    v = np.array([[-5.0, 5.0, 50.0], [-5.0, 5.0, 50.0]])
    t = T0 + np.arange(3.0)
    got = qc.gross_range(t, v, [0.0, -10.0], [np.nan, 40.0])
    np.testing.assert_array_equal(got, [[4, 1, 1], [1, 1, 4]])
    with pytest.raises(ValueError, match="one value per series"):
        qc.gross_range(t, v, [0.0, 1.0, 2.0], None)


@pytest.mark.parametrize("seed", SEEDS)
def test_climatology_matches_loop(seed: int) -> None:
    rng = np.random.default_rng(seed)
    t = np.sort(rng.uniform(T0, T0 + 400 * 86_400, size=(3, 200)), axis=1)
    v = rng.normal(20, 8, size=t.shape)
    lo = rng.uniform(5, 15, size=(3, 12))
    hi = lo + rng.uniform(5, 20, size=(3, 12))
    lo[:, 3] = hi[:, 3] = np.nan  # no climatology for April
    got = qc.climatology(t, v, lo, hi, utc_offset_s=8 * 3600)
    for i in range(3):
        np.testing.assert_array_equal(got[i], naive.climatology(t[i], v[i], lo[i], hi[i], 8 * 3600))


@pytest.mark.parametrize("seed", SEEDS)
def test_spike_matches_loop(seed: int) -> None:
    t, v = _random_batch(seed)
    got = qc.spike(t, v, 1.0, 3.0, max_gap_s=3600)
    for i in range(t.shape[0]):
        np.testing.assert_array_equal(got[i], naive.spike(t[i], v[i], 1.0, 3.0, 3600))


@pytest.mark.parametrize("seed", SEEDS)
def test_rate_of_change_matches_loop(seed: int) -> None:
    t, v = _random_batch(seed)
    got = qc.rate_of_change(t, v, 0.02, max_gap_s=3600)
    for i in range(t.shape[0]):
        np.testing.assert_array_equal(got[i], naive.rate_of_change(t[i], v[i], 0.02, 3600))


@pytest.mark.parametrize("seed", SEEDS)
def test_flat_line_matches_loop(seed: int) -> None:
    t, v = _random_batch(seed)
    got = qc.flat_line(t, v, 0.3, 300.0, 900.0)
    for i in range(t.shape[0]):
        np.testing.assert_array_equal(got[i], naive.flat_line(t[i], v[i], 0.3, 300.0, 900.0))


@pytest.mark.parametrize("seed", SEEDS)
def test_gap_matches_loop(seed: int) -> None:
    t, v = _random_batch(seed)
    got = qc.gap(t, v, 120.0, 3600.0)
    for i in range(t.shape[0]):
        np.testing.assert_array_equal(got[i], naive.gap(t[i], v[i], 120.0, 3600.0))


@pytest.mark.parametrize("seed", SEEDS)
def test_aggregate_matches_loop(seed: int) -> None:
    rng = np.random.default_rng(seed)
    flags = rng.choice(np.array([1, 2, 3, 4, 9], dtype=np.uint8), size=(4, 50), p=[0.5, 0.3, 0.1, 0.05, 0.05])
    np.testing.assert_array_equal(qc.aggregate(*flags), naive.aggregate(*flags))


def test_aggregate_rejects_unknown_flags() -> None:
    with pytest.raises(ValueError, match="unknown flag"):
        qc.aggregate(np.array([1, 5]))


def test_qartod_spike_definition_on_regular_series() -> None:
    # QARTOD: spike_ref = |V_n - (V_n+1 + V_n-1)/2|; first and last points not evaluated
    v = np.array([1.0, 1.1, 1.0, 1.2, 1.0, 1.3, 1.0, 1.4, 1.0, 1.5, 1.0])
    t = T0 + 60.0 * np.arange(v.size)
    got = qc.spike(t, v, 0.15, 0.25)
    # refs: -, .1, .15, .2, .25, .3, .35, .4, .45, .5, -  (ties at a threshold pass)
    np.testing.assert_array_equal(got, [2, 1, 1, 3, 3, 4, 4, 4, 4, 4, 2])


def test_layouts_shared_times_and_1d() -> None:
    t, v = _random_batch(3, n_series=1)
    one = qc.flat_line(t[0], v[0], 0.3, 300.0, 900.0)
    assert one.shape == v[0].shape
    np.testing.assert_array_equal(one, qc.flat_line(t, v, 0.3, 300.0, 900.0)[0])
    shared = qc.rate_of_change(t[0], np.vstack([v[0], v[0] + 1]), 0.02)
    np.testing.assert_array_equal(shared[0], shared[1])


@pytest.mark.parametrize(
    ("times", "values", "match"),
    [
        (T0 + np.array([0.0, 0.0, 1.0]), np.zeros(3), "strictly increase"),
        (T0 + np.array([0.0, 2.0, 1.0]), np.zeros(3), "strictly increase"),
        (np.array([T0, np.nan, T0 + 2]), np.zeros(3), "only at the end"),
        (T0 + np.arange(4.0), np.zeros(3), "fits neither"),
        (T0 + np.arange(3.0), np.zeros((2, 2, 3)), "1-D or 2-D"),
        (np.array([T0, np.inf, T0 + 2]), np.zeros(3), "finite"),
    ],
)
def test_bad_layouts_raise(times: np.ndarray, values: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        qc.gap(times, values, 1.0, 2.0)


def test_pad_ragged_round_trip() -> None:
    t, v = qc.pad_ragged([(T0 + np.arange(3.0), [1.0, 2.0, 3.0]), (T0 + np.arange(1.0), [5.0])])
    assert t.shape == (2, 3) and np.isnan(t[1, 1:]).all()
    flags = qc.gross_range(t, v, 0.0, 10.0)
    np.testing.assert_array_equal(flags, [[1, 1, 1], [1, 9, 9]])
    with pytest.raises(ValueError, match="equal length"):
        qc.pad_ragged([(T0 + np.arange(3.0), [1.0])])


def test_thresholds_validate() -> None:
    with pytest.raises(ValueError, match="ordered"):
        qc.QcThresholds(spike_suspect=5, spike_fail=1)
    with pytest.raises(ValueError, match="flat_tolerance"):
        qc.QcThresholds(flat_tolerance=-1)


@pytest.mark.parametrize("jitter", [0.0, 20.0])
@pytest.mark.parametrize("seed", range(4))
def test_injected_faults_are_flagged(seed: int, jitter: float) -> None:
    f = air_temperature(seed, jitter_s=jitter)
    th = qc.DEFAULT_THRESHOLDS["air_t"]
    r = qc.run_qc(f.t, f.v, th, sensor_lo=-40.0, sensor_hi=60.0)
    # the spike fails the spike test
    assert (r.spike[f.truth["spike"]] == qc.FAIL).all()
    # the stuck probe: suspect from 3 h on, fail from 12 h on, pass before 3 h
    stuck = f.truth["stuck"]
    hours = (f.t[stuck] - f.t[stuck[0]]) / 3600
    fl = r.flat_line[stuck]
    assert (fl[hours >= 3.05] >= qc.SUSPECT).all()
    assert (fl[hours >= 12.05] == qc.FAIL).all()
    assert (fl[hours < 2.5] == qc.PASS).all()
    # impossible values fail the gross range test
    assert (r.gross_range[f.truth["out_of_range"]] == qc.FAIL).all()
    # the step fails nothing but raises the rate of change flag
    assert r.rate_of_change[f.truth["jump"][0]] == qc.SUSPECT
    # missing readings are 9 everywhere
    for flags in (*r.tests().values(), r.aggregate):
        assert (flags[f.truth["missing"]] == qc.MISSING).all()
    # the first reading after the 2-hour outage is suspect in the gap test
    assert r.gap[f.truth["after_gap"][0]] == qc.SUSPECT
    # and the clean stretch at the start is mostly pass
    head = r.aggregate[: f.truth["spike"][0] - 1]
    assert np.mean(head == qc.PASS) > 0.95


def test_causal_tests_do_not_depend_on_later_readings() -> None:
    f = air_temperature(7)
    th = qc.DEFAULT_THRESHOLDS["air_t"]
    full = qc.run_qc(f.t, f.v, th, sensor_lo=-40, sensor_hi=60, causal=True)
    for cut in (500, 1234, 2000):
        part = qc.run_qc(f.t[:cut], f.v[:cut], th, sensor_lo=-40, sensor_hi=60, causal=True)
        for name in qc.CAUSAL_TESTS:
            np.testing.assert_array_equal(part.tests()[name], full.tests()[name][:cut])
        np.testing.assert_array_equal(part.aggregate, full.aggregate[:cut])
    # spike has a one-reading lag: the newest point is not evaluated yet
    assert part.spike[-1] == qc.NOT_EVALUATED


def test_history_window_gives_exact_causal_flags() -> None:
    f = air_temperature(8)
    th = qc.DEFAULT_THRESHOLDS["air_t"]
    full = qc.run_qc(f.t, f.v, th, sensor_lo=-40, sensor_hi=60, causal=True)
    new = slice(2000, 2100)
    start = np.searchsorted(f.t, f.t[new.start] - qc.history_needed_s(th)) - 1
    part = qc.run_qc(
        f.t[start : new.stop], f.v[start : new.stop], th, sensor_lo=-40, sensor_hi=60, causal=True
    )
    np.testing.assert_array_equal(part.aggregate[new.start - start :], full.aggregate[new])


def test_switched_off_tests_are_not_evaluated() -> None:
    t = T0 + 60.0 * np.arange(5)
    v = np.array([1.0, np.nan, 1.0, 1.0, 1.0])
    np.testing.assert_array_equal(checks.flat_line(t, v, None, 60.0, 120.0), [2, 9, 2, 2, 2])
    np.testing.assert_array_equal(checks.spike(t, v, None, None), [2, 9, 2, 2, 2])
    np.testing.assert_array_equal(checks.rate_of_change(t, v, None), [2, 9, 2, 2, 2])


def test_many_series_vectorised_equals_one_by_one() -> None:
    t, v = _random_batch(11, n_series=8, n=300)
    th = qc.QcThresholds(
        spike_suspect=1,
        spike_fail=3,
        rate_suspect=0.02,
        flat_tolerance=0.3,
        flat_suspect_s=300,
        flat_fail_s=900,
        max_gap_s=3600,
    )
    batch = qc.run_qc(t, v, th, sensor_lo=0, sensor_hi=60)
    for i in range(t.shape[0]):
        single = qc.run_qc(t[i], v[i], th, sensor_lo=0, sensor_hi=60)
        np.testing.assert_array_equal(batch.aggregate[i], single.aggregate)


def test_empty_and_single_point_series() -> None:
    th = qc.DEFAULT_THRESHOLDS["air_t"]
    e = np.array([])
    r = qc.run_qc(e, e, th, sensor_lo=-40, sensor_hi=60, month_lo=np.zeros(12), month_hi=np.ones(12))
    assert all(f.shape == (0,) for f in r.tests().values()) and r.aggregate.shape == (0,)
    assert qc.run_qc(np.zeros((3, 0)), np.zeros((3, 0)), th).aggregate.shape == (3, 0)
    one = qc.run_qc(np.array([T0]), np.array([20.0]), th, sensor_lo=-40, sensor_hi=60)
    np.testing.assert_array_equal(one.aggregate, [1])
    np.testing.assert_array_equal(one.spike, [2])
