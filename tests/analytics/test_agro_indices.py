"""Thermal time, frost, pig heat stress, water drop, leaf wetness and disease risk, pond DO:
published examples where they exist, vectorised functions against slow loops on random data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analytics.agro import (
    config,
    dawn_do_at_readings,
    dawn_do_forecast,
    disease,
    durations,
    livestock,
    night_bounds,
    pond,
    thermal,
    water_drop,
    water_drop_same_hours,
)
from analytics.agro.meteo import sun_times_utc
from tests.analytics import naive_agro as naive

T0 = 1_717_200_000.0
GAP = 3 * 3600.0


def _readings(seed: int, n_series: int = 4, n: int = 80, mean: float = 0.0, sd: float = 4.0):  # type: ignore[no-untyped-def]
    """Irregular times (incl. gaps > 3 h), a wandering signal, missing values, ragged padding."""
    rng = np.random.default_rng(seed)
    t = T0 + np.cumsum(rng.choice([300.0, 600.0, 900.0, 1800.0, 4 * 3600.0], size=(n_series, n),
                                  p=[0.3, 0.3, 0.2, 0.15, 0.05]), axis=1)  # fmt: skip
    v = mean + np.cumsum(rng.normal(0, sd / 4, (n_series, n)), axis=1)
    v[rng.random(v.shape) < 0.07] = np.nan
    v[rng.random(v.shape) < 0.05] = mean  # exact repeats (flat segments)
    for i in range(1, n_series):
        cut = int(rng.integers(n // 2, n))
        t[i, cut:] = np.nan
        v[i, cut:] = np.nan
    return t, v


# --- durations ---------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(("lo", "hi"), [(-np.inf, -2.2), (0.0, 7.2), (1.0, np.inf)])
def test_hours_in_band_matches_dense_integration(seed: int, lo: float, hi: float) -> None:
    t, v = _readings(seed)
    got = durations.hours_in_band(t, v, lo, hi, GAP)
    for i in range(t.shape[0]):
        np.testing.assert_allclose(got[i], naive.hours_in_band(t[i], v[i], lo, hi, GAP), atol=2e-3)


@pytest.mark.parametrize("seed", range(4))
def test_longest_run_matches_dense_walk(seed: int) -> None:
    t, v = _readings(seed, mean=-2.0)
    got = durations.longest_run_hours(t, v, -np.inf, -2.2, GAP)
    for i in range(t.shape[0]):
        assert got[i] == pytest.approx(naive.longest_run(t[i], v[i], -np.inf, -2.2, GAP), abs=5e-3)


def test_per_day_sums_and_maxima_in_local_days() -> None:
    t = T0 + 3600.0 * np.arange(48)  # T0 is 2024-06-01 00:00 UTC
    x = np.ones(48)
    days, sums = durations.per_day(t, x, utc_offset_s=8 * 3600)
    np.testing.assert_array_equal(sums, [16.0, 24.0, 8.0])  # UTC+8 shifts the day boundary
    assert days[0] == int(T0 // 86400)
    _, mx = durations.per_day(t, np.arange(48.0), how="max")
    np.testing.assert_array_equal(mx, [23.0, 47.0])
    with pytest.raises(ValueError, match="how"):
        durations.per_day(t, x, how="mean")


# --- thermal time, chill, frost --------------------------------------------------------------


def test_gdd_daily_examples_and_cutoff() -> None:
    # (30 + 20)/2 - 13 = 12; a cold day gives 0; the 30 °C cap trims a 36 °C day
    np.testing.assert_allclose(thermal.gdd_daily([30.0, 12.0, 36.0], [20.0, 2.0, 24.0]), [12.0, 0.0, 17.0])
    np.testing.assert_allclose(thermal.gdd_daily(36.0, 24.0, upper=30.0), 14.0)
    np.testing.assert_allclose(thermal.gdd_daily(30.0, 20.0, base=10.0), 15.0)
    assert np.isnan(thermal.gdd_daily(np.nan, 20.0))
    with pytest.raises(ValueError, match="tmin is above tmax"):
        thermal.gdd_daily(10.0, 20.0)


def test_gdd_daily_matches_loop() -> None:
    rng = np.random.default_rng(1)
    tmin = rng.uniform(-5, 25, (3, 50))
    tmax = tmin + rng.uniform(0, 15, (3, 50))
    got = thermal.gdd_daily(tmax, tmin, base=13.0, upper=32.0)
    for idx in np.ndindex(tmin.shape):
        hi, lo = min(tmax[idx], 32.0), min(tmin[idx], 32.0)
        assert got[idx] == pytest.approx(max((hi + lo) / 2 - 13.0, 0.0), abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_degree_days_from_readings_match_dense_integration(seed: int) -> None:
    t, v = _readings(seed, mean=13.0)
    got = thermal.degree_days(t, v, base=13.0, max_gap_s=GAP)
    for i in range(t.shape[0]):
        np.testing.assert_allclose(got[i], naive.degree_days(t[i], v[i], 13.0, GAP), atol=1e-5)


def test_sinusoidal_day_degree_days_close_to_daily_average_method() -> None:
    t = T0 + 600.0 * np.arange(145)  # one day at 10 minutes
    v = 22 + 8 * np.sin(2 * np.pi * np.arange(145) / 144)  # always above base 13 → exact mean
    assert thermal.degree_days(t, v).sum() == pytest.approx(22 - 13, abs=1e-3)


def test_chill_and_frost_hours_on_a_cold_night() -> None:
    t = T0 + 3600.0 * np.arange(7)
    v = np.array([8.0, 4.0, 0.0, -3.0, -3.0, 1.0, 9.0])
    chill = thermal.chill_hours(t, v).sum()
    # 8→4: 0.8 h, 4→0: 1 h, 0→-3: 0 h (0 °C is in band, measure zero), -3→1: 0.25 h, 1→9: 0.775 h
    assert chill == pytest.approx(0.8 + 1 + 0.25 + 6.2 / 8, abs=1e-9)
    frost = thermal.frost_hours(t, v, limit=config.FROST_CITRUS_FRUIT_C).sum()
    assert frost == pytest.approx(0.8 / 3 + 1 + 0.8 / 4, abs=1e-9)
    assert thermal.longest_frost_hours(t, v) == pytest.approx(0.8 / 3 + 1 + 0.8 / 4, abs=1e-9)
    tea = thermal.frost_hours(t, v, limit=config.FROST_TEA_BUDS_C).sum()
    assert tea == pytest.approx(1 / 3 + 1 + 1 / 4, abs=1e-9)


# --- pig heat stress ---------------------------------------------------------------------------


def test_thi_nrc1971_published_value() -> None:
    assert float(livestock.thi_nrc1971(23.0, 65.0)) == pytest.approx(70.44, abs=0.005)


def test_thi_matches_formula_loop_and_bands() -> None:
    rng = np.random.default_rng(2)
    t, rh = rng.uniform(0, 40, 100), rng.uniform(10, 100, 100)
    got = livestock.thi_nrc1971(t, rh)
    for i in range(100):
        want = 1.8 * t[i] + 32 - (0.55 - 0.0055 * rh[i]) * (1.8 * t[i] - 26)
        assert got[i] == pytest.approx(want, abs=1e-12)
    np.testing.assert_array_equal(
        livestock.thi_band([70.0, 75.0, 78.9, 80.0, 90.0, np.nan]), [0, 1, 1, 2, 3, -1]
    )
    custom = (("ok", -np.inf), ("hot", 72.0))
    np.testing.assert_array_equal(livestock.thi_band([70.44, 73.0], custom), [0, 1])
    with pytest.raises(ValueError, match="increasing"):
        livestock.thi_band([70.0], (("a", 80.0), ("b", 75.0)))
    with pytest.raises(ValueError, match="rh"):
        livestock.thi_nrc1971(25.0, 0.65e3)


@pytest.mark.parametrize("seed", range(4))
def test_water_drop_matches_loop(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.uniform(300, 400, (5, 40))
    x[rng.random(x.shape) < 0.15] = np.nan
    x[:, 30] *= 0.6  # a sudden drop in every pen
    change, alert = livestock.water_drop(x)
    for i in range(5):
        c, a = naive.water_drop(x[i], 7, 3, 0.2)
        np.testing.assert_allclose(change[i], c, rtol=1e-12)
        np.testing.assert_array_equal(alert[i], a)
    assert alert[np.isfinite(x[:, 30]), 30].all()


def test_water_drop_needs_a_baseline() -> None:
    change, alert = livestock.water_drop([100.0, 100.0, 50.0, 100.0, 100.0, 40.0], min_days=2)
    assert np.isnan(change[:2]).all() and change[2] == pytest.approx(-0.5)
    assert alert.tolist() == [False, False, True, False, False, True]
    with pytest.raises(ValueError, match="negative"):
        livestock.water_drop([-1.0, 2.0])


# --- leaf wetness and disease risk -------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_wet_periods_match_state_machine(seed: int) -> None:
    t, wet = _readings(seed, mean=50.0, sd=40.0)
    rng = np.random.default_rng(seed + 100)
    temp = 22 + rng.normal(0, 3, t.shape)
    rules = config.DISEASE_RULES["citrus_fungal"]
    got = disease.wet_periods(t, wet, temp, rules, threshold=50.0, break_h=2.0, max_gap_s=GAP)
    for i in range(t.shape[0]):
        wh, mt, risk = naive.wet_periods(t[i], wet[i], temp[i], rules, 50.0, 2.0, GAP)
        valid = np.isfinite(wet[i]) & np.isfinite(t[i])
        np.testing.assert_allclose(got.wet_hours[i][valid], wh[valid], atol=1e-9)
        np.testing.assert_allclose(got.mean_temp[i][valid], mt[valid], atol=1e-9)
        np.testing.assert_array_equal(got.risk[i][valid], risk[valid])


def test_a_long_warm_wet_night_is_high_risk_and_a_short_one_is_not() -> None:
    t = T0 + 1800.0 * np.arange(48)  # 24 h at 30 min
    wet = np.where((np.arange(48) >= 4) & (np.arange(48) < 32), 90.0, 10.0)  # 14 h wet
    temp = np.full(48, 24.0)
    rules = config.DISEASE_RULES["citrus_fungal"]
    r = disease.wet_periods(t, wet, temp, rules)
    assert r.risk.max() == 3
    # 27 wet half-hours (13.5 h) plus half of the entry and exit segments (0.25 h each)
    assert r.wet_hours.max() == pytest.approx(14.0, abs=1e-9)
    short = np.where((np.arange(48) >= 4) & (np.arange(48) < 20), 90.0, 10.0)  # 8 h wet
    assert disease.wet_periods(t, short, temp, rules).risk.max() == 1
    cold = disease.wet_periods(t, wet, np.full(48, 8.0), rules)
    assert cold.risk.max() == 0
    # a 1-hour dry break does not end the period; a 3-hour one does
    broken = wet.copy()
    broken[18:20] = 10.0
    assert disease.wet_periods(t, broken, temp, rules).wet_hours.max() > 12
    broken[16:22] = 10.0
    assert disease.wet_periods(t, broken, temp, rules).wet_hours.max() < 8
    _days, wet_h = durations.per_day(t, disease.wet_hours(t, wet))
    assert float(np.nansum(wet_h)) == pytest.approx(14.0, abs=1e-9)


def test_disease_rules_validated() -> None:
    with pytest.raises(ValueError, match="bad disease rule"):
        disease.risk_level(10.0, 20.0, [config.DiseaseRule(25.0, 20.0, 5.0, 1)])


# --- pond dissolved oxygen ---------------------------------------------------------------------


def test_dawn_forecast_recovers_a_linear_night_decline() -> None:
    rng = np.random.default_rng(5)
    sunset, sunrise = T0 + 19 * 3600, T0 + 30 * 3600
    t = sunset + 900.0 * np.arange(12)  # the first 3 h of the night so far
    true_dawn = np.array([5.0, 2.0, 0.5])
    slope = (true_dawn - 8.0) / 11.0  # mg/L per hour from 8 mg/L at dusk
    do = 8.0 + slope[:, None] * (t - sunset) / 3600 + rng.normal(0, 0.05, (3, 12))
    f = pond.dawn_do_forecast(t, do, sunset, sunrise)
    np.testing.assert_allclose(f.dawn_do, true_dawn, atol=0.3)
    np.testing.assert_allclose(f.slope_per_h, slope, atol=0.03)
    # hours below 3 mg/L before sunrise: the line crosses 3 at 8 - 3 = 5 mg/L lost
    want_below = [0.0, 11 - 5 / (6 / 11), 11 - 5 / (7.5 / 11)]
    np.testing.assert_allclose(f.hours_below, want_below, atol=0.4)
    assert (f.n_used == 12).all()


def test_dawn_forecast_matches_polyfit_loop() -> None:
    rng = np.random.default_rng(6)
    t0, tr = T0, T0 + 10 * 3600
    t = np.sort(rng.uniform(t0 - 3600, tr + 3600, (6, 30)), axis=1)
    do = rng.uniform(2, 9, (6, 30))
    do[rng.random(do.shape) < 0.1] = np.nan
    f = pond.dawn_do_forecast(t, do, t0, tr)
    for i in range(6):
        use = (t[i] >= t0) & (t[i] <= tr) & np.isfinite(do[i])
        b, a = np.polyfit((t[i][use] - tr) / 3600, do[i][use], 1)
        last = do[i][use][-1]
        want = max(a, 0.0) if b < 0 else last
        assert f.dawn_do[i] == pytest.approx(want, abs=1e-9)


def test_dawn_forecast_edge_cases() -> None:
    t = T0 + 3600.0 * np.arange(3)
    one = pond.dawn_do_forecast(t, [6.0, 6.5, 7.0], T0, T0 + 10 * 3600)  # rising: last reading
    assert float(one.dawn_do) == 7.0 and float(one.hours_below) == 0.0
    few = pond.dawn_do_forecast(t, [6.0, np.nan, np.nan], T0, T0 + 10 * 3600)
    assert math.isnan(float(few.dawn_do))
    with pytest.raises(ValueError, match="sunrise"):
        pond.dawn_do_forecast(t, [6.0, 5.0, 4.0], T0, T0 - 1)


def test_measured_hours_below_3_mgl() -> None:
    t = T0 + 3600.0 * np.arange(5)
    do = np.array([4.0, 3.0, 2.0, 2.0, 4.0])
    assert pond.hours_below(t, do).sum() == pytest.approx(1 + 1 + 0.5, abs=1e-9)


def test_empty_inputs_give_empty_or_nan_results() -> None:
    e = np.array([])
    for f in (durations.hours_in_band, thermal.chill_hours, thermal.frost_hours, thermal.degree_days):
        assert f(e, e).shape == (0,)
    assert float(durations.longest_run_hours(e, e)) == 0.0
    days, sums = durations.per_day(e, e)
    assert days.shape == (0,) and sums.shape == (0,)
    assert disease.wet_periods(e, e, e, config.DISEASE_RULES["tea_blister_blight"]).risk.shape == (0,)
    f = pond.dawn_do_forecast(np.zeros((2, 0)), np.zeros((2, 0)), 0.0, 3600.0)
    assert np.isnan(f.dawn_do).all() and f.dawn_do.shape == (2,)
    change, alert = livestock.water_drop(e)
    assert change.shape == alert.shape == (0,)


def test_sun_times_wanzhou_and_night_bounds() -> None:
    # Wanzhou (30.8 N, 108.4 E), 2026-12-06: sunrise about 07:41, sunset about 17:52 local (UTC+8)
    day = (np.datetime64("2026-12-06") - np.datetime64("1970-01-01")).astype(int)
    rise, sset = (float(x) for x in sun_times_utc(day, 30.8, 108.4))
    local = lambda x: (x + 8 * 3600 - day * 86400) / 3600  # noqa: E731
    assert abs(local(rise) - 7.68) < 0.25 and abs(local(sset) - 17.87) < 0.25
    assert night_bounds(rise + 3600, 30.8, 108.4, 8 * 3600) is None  # by day
    dusk, dawn = night_bounds(sset + 600, 30.8, 108.4, 8 * 3600) or (0.0, 0.0)
    assert dusk == sset and 13 * 3600 < dawn - dusk < 15 * 3600
    assert night_bounds(rise - 600, 30.8, 108.4, 8 * 3600) == (pytest.approx(sset - 86400, abs=120), rise)
    # without a place: 18:00 .. 06:00 local
    m = day * 86400.0 - 8 * 3600
    assert night_bounds(m + 3 * 3600, None, None, 8 * 3600) == (m - 6 * 3600, m + 6 * 3600)


def test_dawn_do_at_readings_equals_one_forecast_per_reading() -> None:
    rng = np.random.default_rng(4)
    m = 1_765_000_800.0 - 8 * 3600  # a local midnight
    t = m + 12 * 3600 + np.arange(300) * 300.0
    v = 8 - 0.3 * np.clip((t - m) / 3600 - 17, 0, None) + rng.normal(0, 0.05, len(t))
    got = dawn_do_at_readings(t, v, 30.8, 108.4, 8 * 3600)
    for i in range(len(t)):
        b = night_bounds(float(t[i]), 30.8, 108.4, 8 * 3600)
        if b is None:
            assert got[i] == v[i]
            continue
        use = t[: i + 1] >= b[0]
        want = float(dawn_do_forecast(t[: i + 1][use], v[: i + 1][use], b[0], b[1]).dawn_do)
        assert got[i] == pytest.approx(want, nan_ok=True)
    tail = dawn_do_at_readings(t, v, 30.8, 108.4, 8 * 3600, from_index=200)
    np.testing.assert_array_equal(tail, got[200:])


def test_water_drop_same_hours_equals_a_loop() -> None:
    rng = np.random.default_rng(2)
    t = np.sort(1_765_000_000.0 + rng.uniform(0, 9 * 86400, 2000))
    x = rng.uniform(0, 5, len(t))
    at = t[-40:]
    got = water_drop_same_hours(t, x, at, window_h=6)
    for k, a in enumerate(at):
        totals = []
        for d in range(7, -1, -1):
            inside = (t > a - d * 86400 - 6 * 3600) & (t <= a - d * 86400)
            totals.append(x[inside].sum() if inside.any() else np.nan)
        want = water_drop(np.array(totals))[0][-1]
        assert got[k] == pytest.approx(want, nan_ok=True)
