"""Streaming anomaly detector: causality, incremental == batch, state, vectorisation, edge cases."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import analytics
from analytics.anomaly import AnomalyState, DetectorConfig, score_series, update

T0 = 1_717_200_000.0


def _series(rng: np.random.Generator, n: int, dt: float = 300.0) -> tuple[np.ndarray, np.ndarray]:
    t = T0 + dt * np.arange(n)
    h = np.mod(t, 86_400) / 3600
    x = 20 + 5 * np.sin(2 * np.pi * h / 24) + np.cumsum(rng.normal(0, 0.05, n)) + rng.normal(0, 0.3, n)
    return t, x


def _loop_reference(times: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The slow reference: each series alone, one point at a time."""
    out = np.empty(values.shape, dtype=np.float32)
    for i in range(values.shape[0]):
        st = AnomalyState.new(1)
        for j in range(values.shape[1]):
            out[i, j] = update(st, times[i, j : j + 1], values[i, j : j + 1])[0]
    return out


def test_exported_from_analytics() -> None:
    assert analytics.score_series is score_series


def test_scores_in_unit_interval_and_spike_scores_high() -> None:
    rng = np.random.default_rng(1)
    t, x = _series(rng, 3000)
    x[2500] += 15.0
    s = score_series(t, x)
    assert s.shape == x.shape
    assert np.all((s >= 0) & (s <= 1))
    assert s[2500] == s.max() and s[2500] > 0.2


def test_causal_future_changes_never_change_past_scores() -> None:
    rng = np.random.default_rng(2)
    t, x = _series(rng, 1500)
    base = score_series(t, x)
    for cut in (200, 777, 1400):
        y = x.copy()
        y[cut:] = rng.normal(0, 100, len(y) - cut)
        changed = score_series(t, y)
        np.testing.assert_array_equal(changed[:cut], base[:cut])
        assert not np.array_equal(changed[cut:], base[cut:])


def test_incremental_batches_equal_one_batch() -> None:
    rng = np.random.default_rng(3)
    n_series, n = 7, 1200
    times = np.empty((n_series, n))
    values = np.empty((n_series, n))
    for i in range(n_series):
        times[i], values[i] = _series(rng, n, dt=60.0 * (i + 1))
    values[2, 500:520] = np.nan
    batch = update(AnomalyState.new(n_series), times, values)
    st = AnomalyState.new(n_series)
    parts = []
    cuts = [0, 1, 2, 50, 333, 334, 900, n]
    for a, b in itertools.pairwise(cuts):
        parts.append(update(st, times[:, a:b], values[:, a:b]))
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), batch)


def test_incremental_through_serialised_state_equals_batch() -> None:
    rng = np.random.default_rng(4)
    t, x = _series(rng, 2000)
    batch = score_series(t, x)
    blobs = AnomalyState.new(1).to_bytes()
    out = []
    for a in range(0, 2000, 97):
        st = AnomalyState.from_bytes(blobs)
        out.append(update(st, t[None, a : a + 97], x[None, a : a + 97])[0])
        blobs = st.to_bytes()
    np.testing.assert_array_equal(np.concatenate(out), batch)


def test_state_round_trip_is_exact_and_small() -> None:
    rng = np.random.default_rng(5)
    times = np.stack([_series(rng, 600)[0] for _ in range(3)])
    values = np.stack([_series(rng, 600)[1] for _ in range(3)])
    st = AnomalyState.new(3)
    update(st, times, values)
    blobs = st.to_bytes()
    assert len(blobs) == 3 and len({len(b) for b in blobs}) == 1
    assert len(blobs[0]) == st.nbytes_per_series() < 5000  # 4,537 B (state version 4)
    back = AnomalyState.from_bytes(blobs)
    for name, arr in st.arrays().items():
        np.testing.assert_array_equal(getattr(back, name), arr, err_msg=name)
    # one series' state alone, and re-ordered
    one = AnomalyState.from_bytes([blobs[2]])
    np.testing.assert_array_equal(one.daily, st.daily[2:3])


def test_foreign_state_blob_is_rejected() -> None:
    blob = AnomalyState.new(1).to_bytes()[0]
    with pytest.raises(ValueError, match="state blob 0"):
        AnomalyState.from_bytes([blob[:-1]])
    with pytest.raises(ValueError, match="state blob 1"):
        AnomalyState.from_bytes([blob, b"\x09" + blob[1:]])
    with pytest.raises(ValueError):
        AnomalyState.from_bytes([blob], DetectorConfig(daily_bins=48))


@pytest.mark.parametrize("seed", [10, 11, 12])
def test_vectorised_equals_per_series_loop(seed: int) -> None:
    """Random series of different lengths, rates, scales, gaps and NaNs: batch == slow loop."""
    rng = np.random.default_rng(seed)
    n_series, n = 5, 400
    times = np.empty((n_series, n))
    values = np.empty((n_series, n))
    for i in range(n_series):
        steps = rng.choice([30.0, 60.0, 600.0, 3600.0]) * rng.uniform(0.5, 1.5, n)
        steps[rng.integers(0, n, 3)] *= 50  # gaps
        times[i] = T0 + np.cumsum(steps)
        values[i] = rng.normal(0, 10.0 ** rng.uniform(-3, 6), n) + 10.0 ** rng.uniform(-2, 8)
        values[i, rng.random(n) < 0.05] = np.nan
        if i == 0:
            values[i, 100:160] = values[i, 100]  # a stuck stretch
    vec = update(AnomalyState.new(n_series), times, values)
    ref = _loop_reference(times, values)
    np.testing.assert_allclose(vec, ref, rtol=0, atol=1e-5)
    assert np.array_equal(np.isnan(vec), np.isnan(values))
    finite = vec[~np.isnan(vec)]
    assert np.all((finite >= 0) & (finite <= 1))


def test_missing_values_are_skipped_not_learnt() -> None:
    rng = np.random.default_rng(6)
    t, x = _series(rng, 800)
    y = x.copy()
    y[300:310] = np.nan
    s = score_series(t, y)
    assert np.all(np.isnan(s[300:310]))
    # the same as scoring the series with those rows removed
    keep = ~np.isnan(y)
    np.testing.assert_array_equal(s[keep], score_series(t[keep], y[keep]))


def test_irregular_sampling_and_long_gap_do_not_alarm() -> None:
    rng = np.random.default_rng(7)
    steps = rng.uniform(100, 500, 3000)
    steps[2000] = 6 * 3600.0  # a six-hour outage
    t = T0 + np.cumsum(steps)
    h = np.mod(t, 86_400) / 3600
    x = 15 + 6 * np.sin(2 * np.pi * (h - 9) / 24) + rng.normal(0, 0.2, len(t))
    s = score_series(t, x)
    assert np.nanmax(s[1500:]) < 0.5


def test_constant_series_never_alarms_and_datetime64_accepted() -> None:
    t = (np.datetime64("2024-06-01T00:00") + np.arange(2000) * np.timedelta64(5, "m")).astype("datetime64[s]")
    s = score_series(t, np.full(2000, 45.0))
    assert np.all(s == 0)


def test_bad_shapes_raise() -> None:
    with pytest.raises(ValueError):
        score_series(np.arange(5.0), np.arange(4.0))
    with pytest.raises(ValueError):
        update(AnomalyState.new(2), np.zeros((3, 4)), np.zeros((3, 4)))


def test_tail_update_counts_exactly_the_edges_each_value_reaches() -> None:
    """The ladder-table update equals comparing every value against every edge (slow loop),
    for values below, inside and beyond the grid, NaN features and inactive series; each value's
    place in its bin (the bin of the last edge it reaches; in the open top bin its distance from
    the top edge) goes to that bin's sum."""
    from analytics.anomaly.tails import edges, row_size, update_tails

    cfg = DetectorConfig()
    rng = np.random.default_rng(7)
    n, k, row = 300, cfg.tail_bins, row_size(cfg)
    lo = np.array([cfg.tail_lo, cfg.tail_lo, cfg.density_lo], dtype=np.float32)
    # off-edge values (a value exactly on an edge may round either way in float32)
    logf = (rng.uniform(-12.0, 30.0, size=(n, 3)) + 1e-3).astype(np.float32)
    logf[::17, 1] = np.nan
    logf[::13, 0] = np.inf
    logf[::5, 2] = 25.0  # beyond the top edge, finite
    active = rng.random(n) > 0.2
    surv = np.zeros((n, 3, row), dtype=np.float32)
    surv[..., :k] = rng.random((n, 3, k))
    sums = np.zeros((n, 3, row), dtype=np.float32)
    sums[..., :k] = rng.random((n, 3, k))
    total = rng.random((n, 3)).astype(np.float32)
    want_s, want_g, want_t = surv.copy(), sums.astype(np.float64), total.copy()
    for i in range(n):
        if not active[i]:
            continue
        want_t[i] += 1.0
        for f in range(3):
            grid = edges(cfg, float(lo[f]))
            last = -1
            for j in range(k):
                if logf[i, f] >= grid[j]:  # False for NaN
                    want_s[i, f, j] += 1.0
                    last = j
            if last >= 0:  # an infinite value counts k bins past the top edge
                place = (float(logf[i, f]) - float(lo[f])) / cfg.tail_step - last
                want_g[i, f, last] += min(place, k)
    with np.errstate(invalid="ignore"):
        update_tails(logf, surv, sums, total, active, lo, cfg)
    np.testing.assert_array_equal(surv, want_s)
    np.testing.assert_array_equal(total, want_t)
    assert np.isfinite(sums).all()
    np.testing.assert_allclose(sums, want_g, rtol=0, atol=2e-5)


def test_series_blocks_give_the_same_scores_and_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """A long batch over many series runs block by block of series (for the cache); the scores
    and the final state are exactly those of all series advancing together."""
    from analytics.anomaly import detector

    rng = np.random.default_rng(21)
    n_series, n = 7, 300
    times = np.stack([_series(rng, n)[0] for _ in range(n_series)])
    values = np.stack([_series(rng, n)[1] for _ in range(n_series)])
    values[2, rng.random(n) < 0.1] = np.nan
    whole = AnomalyState.new(n_series)
    want = update(whole, times, values)
    monkeypatch.setattr(detector, "_SERIES_BLOCK", 3)  # 7 series: blocks of 3, 3 and 1
    blocks: list[int] = []
    advance = detector._advance
    monkeypatch.setattr(
        detector, "_advance", lambda st, t, x: blocks.append(st.n_series) or advance(st, t, x)
    )
    blocked = AnomalyState.new(n_series)
    got = update(blocked, times, values)
    assert blocks == [3, 3, 1]  # the blocked path ran
    np.testing.assert_array_equal(got, want)
    for name, arr in whole.arrays().items():
        np.testing.assert_array_equal(blocked.arrays()[name], arr, err_msg=name)


@pytest.mark.parametrize("longest_first", [True, False])
def test_ragged_batch_padded_at_the_end_equals_each_series_alone(longest_first: bool) -> None:
    """Series of different lengths in one (N, T) batch, NaN-padded at the end (how the alert
    service feeds a step's readings): the scores equal each series scored alone, whether the
    still-running series form a prefix at every column (longest first) or not."""
    rng = np.random.default_rng(11)
    lengths = sorted(rng.integers(1, 120, 30).tolist(), reverse=longest_first)
    if not longest_first:
        rng.shuffle(lengths)
    width = max(lengths)
    t = np.empty((len(lengths), width))
    x = np.full((len(lengths), width), np.nan)
    series = [_series(rng, 400) for _ in lengths]
    st = AnomalyState.new(len(lengths))
    warm_t = np.stack([s[0][:200] for s in series])
    warm_x = np.stack([s[1][:200] for s in series])
    update(st, warm_t, warm_x)  # warmed up together, so scores are not all zero
    for i, (n, (ts, xs)) in enumerate(zip(lengths, series, strict=True)):
        t[i, :n], x[i, :n] = ts[200 : 200 + n], xs[200 : 200 + n]
        t[i, n:] = ts[200 + n - 1]
    got = update(st, t, x)
    for i, (n, (ts, xs)) in enumerate(zip(lengths, series, strict=True)):
        alone = score_series(ts[: 200 + n], xs[: 200 + n])[200:]
        np.testing.assert_array_equal(got[i, :n], alone)
        assert np.all(np.isnan(got[i, n:]))
