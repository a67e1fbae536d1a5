"""Farm alerts (analytics.anomaly.farm) against plain loops, and on synthetic farms."""

from __future__ import annotations

import numpy as np
import pytest

from analytics.anomaly import AnomalyState, farm, update
from analytics.anomaly.synthetic import alarm_precision_recall, farm_masks, generate
from analytics.qc import DEFAULT_THRESHOLDS, run_qc
from tests.analytics import naive_anomaly

T0 = 1_717_200_000.0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_context_and_alerts_equal_slow_loops(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_series, n = 4, 900
    times = T0 + np.cumsum(rng.uniform(60, 900, (n_series, n)), axis=1)
    rain = np.where(rng.random((n_series, n)) < 0.05, rng.uniform(0, 3, (n_series, n)), 0.0)
    rain[rng.random((n_series, n)) < 0.03] = np.nan
    offset = float(rng.choice([0.0, 8 * 3600.0, -5 * 3600.0]))
    # a daily counter (rolls over at local midnight), with drops elsewhere and missing readings
    drunk = rng.uniform(0, 5, (n_series, n))
    day = np.floor((times + offset) / 86_400)
    counter = np.empty_like(drunk)
    for i in range(n_series):
        for j in range(n):
            new_day = j == 0 or day[i, j] != day[i, j - 1]
            counter[i, j] = drunk[i, j] if new_day else counter[i, j - 1] + drunk[i, j]
    counter[rng.random((n_series, n)) < 0.02] = 0.0
    counter[rng.random((n_series, n)) < 0.02] = np.nan
    scores = rng.random((n_series, n)) ** 4
    scores[rng.random((n_series, n)) < 0.05] = np.nan
    qc = rng.random((n_series, n)) < 0.02
    got_rain = farm.rain_context(times, rain)
    got_roll = farm.rollover_context(times, counter, utc_offset_s=offset)
    explained = got_rain | got_roll
    got = farm.alerts(scores, 0.3, qc, explained)
    for i in range(n_series):
        t = times[i].tolist()
        assert got_rain[i].tolist() == naive_anomaly.rain_context(t, rain[i].tolist())
        assert got_roll[i].tolist() == naive_anomaly.rollover_context(t, counter[i].tolist(), offset)
        want = naive_anomaly.alerts(scores[i].tolist(), 0.3, qc[i].tolist(), explained[i].tolist())
        assert got[i].tolist() == want
    assert got_roll.any() and got_rain.any() and not got_roll.all()
    # one series alone gives the same as the batch
    np.testing.assert_array_equal(farm.rain_context(times[2], rain[2]), got_rain[2])


def test_qc_alarms_are_fail_or_range_or_flat_line_suspect() -> None:
    t = T0 + 300.0 * np.arange(400)
    x = 8 + np.sin(np.arange(400) / 20)
    x[100] = 0.1  # below do_mgl's operator range (suspect)
    x[250:400] = x[250]  # flat for 12.5 h (suspect after 6 h)
    res = run_qc(t, x, DEFAULT_THRESHOLDS["do_mgl"], causal=True)
    got = farm.qc_alarms(res)
    assert got[100] and not got[99] and not got[101]
    assert got[399] and not got[260]
    assert got.sum() == 1 + np.count_nonzero(res.flat_line == 3) + np.count_nonzero(res.flat_line == 4)


def test_generator_context_is_not_alerted_and_faults_are_kinds() -> None:
    data = generate(seed=7, farms=3, days=10)
    scores = update(AnomalyState.new(data.values.shape[0]), data.times, data.values)
    qc, explained = farm_masks(data)
    alarms = farm.alerts(scores, farm.ALERT_LEVEL, qc, explained)
    for i, kind in enumerate(data.kinds):
        if kind == "soil_vwc":
            rain = data.values[data.rows_of(data.farms[i], "rain_mm")]
            jumped = np.diff(data.values[i], prepend=data.values[i, 0]) > 0.5
            assert (jumped & (rain > 0)).any()  # the soil does jump with the rain
            assert not (alarms[i] & explained[i]).any()
        if kind == "water_l":
            rolled = np.diff(data.values[i]) < 0
            assert rolled.sum() >= 9  # every midnight
            assert not alarms[i, 1:][rolled].any()
    assert alarm_precision_recall(data, alarms).faults == len(data.faults)


def _walks(
    seed: int, n_series: int, n: int, daily_gaps: bool
) -> tuple[np.random.Generator, np.ndarray, np.ndarray, np.ndarray]:
    """(the generator, times, quantised random walks with flat stretches of every length and
    missing readings, a daily cycle with noise and a slow drift in its last third)."""
    rng = np.random.default_rng(seed)
    times = T0 + np.cumsum(rng.uniform(200, 400, (n_series, n)), axis=1)
    values = np.round(np.cumsum(rng.normal(0, 0.05, (n_series, n)), axis=1), 1)
    for i in range(n_series):
        for _ in range(6):
            a = int(rng.integers(0, n - 200))
            values[i, a : a + int(rng.integers(5, 200))] = values[i, a]
    values[rng.random((n_series, n)) < 0.03] = np.nan
    hours = np.mod(times, 86_400) / 3600
    daily = 7.5 + 0.2 * np.sin(2 * np.pi * hours / 24) + rng.normal(0, 0.03, (n_series, n))
    daily[:, 2 * n // 3 :] += np.linspace(0, 0.8, n - 2 * n // 3)
    if daily_gaps:
        daily[rng.random((n_series, n)) < 0.03] = np.nan
    return rng, times, values, daily


@pytest.mark.parametrize("seed", [1, 2])
def test_stuck_and_drift_rules_equal_slow_loops(seed: int) -> None:
    n_series, n = 3, 3000
    _, times, values, daily = _walks(seed, n_series, n, daily_gaps=True)
    short = {"min_s": 1800.0, "warmup_s": 6 * 3600.0}
    got = farm.stuck_alarms(times, values, **short)
    got_drift = farm.drift_alarms(times, daily, days=2, warmup_s=3600.0)
    for i in range(n_series):
        t = times[i].tolist()
        assert got[i].tolist() == naive_anomaly.stuck_alarms(t, values[i].tolist(), **short)
        want = naive_anomaly.drift_alarms(t, daily[i].tolist(), days=2, warmup_s=3600.0)
        assert got_drift[i].tolist() == want
    assert got.any() and got_drift.any() and not got_drift[:, : 2 * n // 3].any()
    np.testing.assert_array_equal(farm.stuck_alarms(times[1], values[1], **short), got[1])


def test_stuck_probe_is_judged_against_its_own_flat_stretches() -> None:
    t = T0 + 300.0 * np.arange(2000)
    rng = np.random.default_rng(4)
    soil = np.round(30 + rng.normal(0, 0.08, 2000), 1)  # repeats now and then (0.1 % steps)
    soil[1500:1644] = soil[1500]  # stuck for 12 h
    got = farm.stuck_alarms(t, soil)
    assert not got[:1500].any()
    first = 1500 + int(np.argmax(got[1500:]))
    assert got[1500:1644].any() and 1500 + 12 <= first <= 1500 + 48  # after 1-4 h, not 24 h
    never = 7 + 0.01 * rng.normal(size=2000)  # a probe that never repeats: after min_s (1 h)
    never[1500:1600] = never[1500]
    assert int(np.argmax(farm.stuck_alarms(t, never))) == 1512


def test_drift_is_found_and_weather_and_yesterdays_event_are_not() -> None:
    t = T0 + 300.0 * np.arange(12 * 288)
    rng = np.random.default_rng(5)
    hours = np.mod(t, 86_400) / 3600
    ph = 7.6 + 0.25 * np.sin(2 * np.pi * (hours - 10) / 24) + rng.normal(0, 0.03, len(t))
    base = farm.drift_alarms(t, ph)
    assert not base.any()
    drifted = ph.copy()
    drifted[2500:2932] += np.linspace(0, 0.6, 432)
    drifted[2932:] += 0.6
    got = farm.drift_alarms(t, drifted)
    assert 2500 < int(np.argmax(got)) < 2500 + 144  # within 12 h of a 36-hour drift
    bump = ph.copy()
    bump[2000:2100] += 1.0  # one unusual afternoon: an alarm then, none a day later
    got = farm.drift_alarms(t, bump)
    assert got[2000:2100].any() and not got[2100 + 36 : 2400].any()


@pytest.mark.parametrize("seed", [3, 4])
def test_stuck_and_drift_step_by_step_equal_the_whole_history(seed: int) -> None:
    """The alert service applies both rules a step at a time, with state per series
    (``stuck_update``, ``drift_residuals`` + ``drift_update``): the alarms equal those of the whole
    history at once, for steps of any length and rows of different lengths per step (padded at
    their end with their last time and NaN)."""
    n_series, n = 4, 2500
    rng, times, values, daily = _walks(seed, n_series, n, daily_gaps=False)
    short = {"min_s": 1800.0, "warmup_s": 6 * 3600.0}
    dkw = {"days": 2, "warmup_s": 3600.0}
    want_stuck = farm.stuck_alarms(times, values, **short)
    want_drift = farm.drift_alarms(times, daily, **dkw)
    assert want_stuck.any() and want_drift.any()

    stuck, drift = farm.stuck_state(n_series), farm.drift_state(n_series)
    got_stuck = np.zeros_like(want_stuck)
    got_drift = np.zeros_like(want_drift)
    pos = np.zeros(n_series, dtype=int)
    while (pos < n).any():
        take = np.minimum(rng.integers(0, 120, n_series), n - pos)  # ragged: 0 .. 119 new each
        width = max(1, int(take.max()))
        tt = np.empty((n_series, width))
        vv = np.full((n_series, width), np.nan)
        dd = np.full((n_series, width), np.nan)
        for i in range(n_series):
            a, m = pos[i], take[i]
            last = times[i, a + m - 1] if m else (times[i, a - 1] if a else T0)
            tt[i] = last
            tt[i, :m], vv[i, :m], dd[i, :m] = times[i, a : a + m], values[i, a : a + m], daily[i, a : a + m]
        s_out = farm.stuck_update(stuck, tt, vv, **short)
        hist_t = np.where(np.arange(n) < (pos + take)[:, None], times, np.nan)  # history up to now
        resid = farm.drift_residuals(tt, dd, hist_t, daily, days=2)
        d_out = farm.drift_update(drift, tt, resid, warmup_s=3600.0)
        for i in range(n_series):
            a, m = pos[i], take[i]
            got_stuck[i, a : a + m] = s_out[i, :m]
            got_drift[i, a : a + m] = d_out[i, :m]
        pos += take
    np.testing.assert_array_equal(got_stuck, want_stuck)
    np.testing.assert_array_equal(got_drift, want_drift)
