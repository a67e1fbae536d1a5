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
