"""FAO-56 ET0: published worked examples, missing-data procedures, pyet cross-check, loops."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyet
import pytest

import analytics
from analytics.agro import meteo
from analytics.agro.et0 import et0_fao56_daily, et0_fao56_hourly, et0_hargreaves

TOL = 0.02  # FAO prints rounded intermediates: final ET0 within 0.02 mm/day


def test_exported_from_analytics() -> None:
    assert analytics.et0_fao56_daily is et0_fao56_daily
    assert analytics.et0_fao56_hourly is et0_fao56_hourly


# --- FAO-56 intermediate examples (chapter 3) -------------------------------------------------


def test_example_2_pressure_and_psychrometric_constant() -> None:
    assert meteo.pressure_kpa(1800) == pytest.approx(81.8, abs=0.05)
    assert meteo.psychrometric_kpa_c(1800) == pytest.approx(0.054, abs=0.0005)


def test_example_3_saturation_vapour_pressure() -> None:
    assert meteo.svp_kpa(24.5) == pytest.approx(3.075, abs=0.001)
    assert meteo.svp_kpa(15.0) == pytest.approx(1.705, abs=0.001)
    assert (meteo.svp_kpa(24.5) + meteo.svp_kpa(15.0)) / 2 == pytest.approx(2.39, abs=0.005)


def test_example_5_actual_vapour_pressure_from_rh() -> None:
    assert meteo.ea_from_rh(25.0, 18.0, 82.0, 54.0) == pytest.approx(1.70, abs=0.005)
    assert meteo.ea_from_rh_mean(25.0, 18.0, 68.0) == pytest.approx(1.78, abs=0.005)


def test_examples_8_9_extraterrestrial_radiation_and_daylight() -> None:
    # 20°S, 3 September (J = 246)
    assert meteo.inverse_distance(246) == pytest.approx(0.985, abs=0.0005)
    assert meteo.declination_rad(246) == pytest.approx(0.120, abs=0.0005)
    assert meteo.sunset_angle_rad(math.radians(-20), meteo.declination_rad(246)) == pytest.approx(
        1.527, abs=0.001
    )
    assert meteo.ra_daily(-20, 246) == pytest.approx(32.2, abs=0.05)
    assert meteo.daylight_hours(-20, 246) == pytest.approx(11.7, abs=0.05)


def test_example_11_net_longwave_radiation() -> None:
    # Rio de Janeiro, May: Rs 14.5, Rso 18.8, Tmax 25.1, Tmin 19.1, ea 2.1 → Rnl 3.5, Rn 7.6
    t4 = (meteo.kelvin4(25.1) + meteo.kelvin4(19.1)) / 2
    rnl = meteo.net_longwave(t4, 2.1, 14.5 / 18.8)
    assert rnl == pytest.approx(3.5, abs=0.05)
    assert meteo.net_shortwave(14.5) - rnl == pytest.approx(7.6, abs=0.05)


def test_example_13_monthly_soil_heat_flux() -> None:
    # March 14.1, April 16.1, May 18.8 °C → G(April) 0.33 (Eq. 43) or 0.28 (Eq. 44)
    assert meteo.soil_heat_flux_monthly(14.1, t_next=18.8) == pytest.approx(0.33, abs=0.005)
    assert meteo.soil_heat_flux_monthly(14.1, t_this=16.1) == pytest.approx(0.28, abs=0.005)
    with pytest.raises(ValueError, match="t_next"):
        meteo.soil_heat_flux_monthly(14.1)


def test_example_14_wind_at_2m() -> None:
    assert meteo.wind_2m(3.2, 10.0) == pytest.approx(2.4, abs=0.05)


# --- FAO-56 ET0 worked examples (chapter 4) ---------------------------------------------------


def test_example_17_bangkok_april_monthly() -> None:
    g = meteo.soil_heat_flux_monthly(29.2, t_this=30.2)  # March 29.2, April 30.2 °C
    et0 = et0_fao56_daily(
        tmax=34.8, tmin=25.6, ea=2.85, u2=2.0, n_hours=8.5,
        lat_deg=13 + 44 / 60, elevation_m=2, doy=105, g=g,
    )  # fmt: skip
    assert float(et0) == pytest.approx(5.72, abs=TOL)


def test_example_18_uccle_6_july_daily() -> None:
    u2 = meteo.wind_2m(10 / 3.6, 10.0)  # 10 km/h at 10 m
    assert u2 == pytest.approx(2.078, abs=0.001)
    et0 = et0_fao56_daily(
        tmax=21.5, tmin=12.3, rh_max=84, rh_min=63, u2=u2, n_hours=9.25,
        lat_deg=50 + 48 / 60, elevation_m=100, doy=187,
    )  # fmt: skip
    assert float(et0) == pytest.approx(3.88, abs=TOL)


def _example_19(**kw: object) -> np.ndarray:
    args: dict[str, object] = dict(
        t=[38.0, 28.0], rh=[52.0, 90.0], u2=[3.3, 1.9], rs=[2.450, 0.0],
        lat_deg=16 + 13 / 60, lon_deg_west=16.25, lz_deg_west=15.0,
        elevation_m=8.0, doy=274, hour_mid=[14.5, 2.5],
    )  # fmt: skip
    args.update(kw)
    return et0_fao56_hourly(**args)  # type: ignore[arg-type]


def test_example_19_ndiaye_hourly() -> None:
    omega = meteo.hour_angle_mid_rad(14.5, 16.25, 15.0, 274)
    ra, day = meteo.ra_period(16 + 13 / 60, 274, omega)
    assert bool(day) and float(ra) == pytest.approx(3.543, abs=0.001)
    day_et0, night_et0 = _example_19(rs_rso_night=0.8)
    assert day_et0 == pytest.approx(0.63, abs=0.005)  # mm/hour, 14-15 h
    assert night_et0 == pytest.approx(0.0, abs=0.005)  # 02-03 h


def test_hourly_night_ratio_derived_from_the_series() -> None:
    # a synthetic clear day at N'Diaye: Rs = 0.75 Rso at every daytime hour → the night takes 0.75
    hours = np.arange(24) + 0.5
    omega = meteo.hour_angle_mid_rad(hours, 16.25, 15.0, 274)
    ra, day = meteo.ra_period(16 + 13 / 60, 274, omega)
    rs = 0.75 * meteo.rso(8.0, ra)
    kw = dict(
        t=28.0,
        rh=70.0,
        u2=2.0,
        lat_deg=16 + 13 / 60,
        lon_deg_west=16.25,
        lz_deg_west=15.0,
        elevation_m=8.0,
        doy=274,
    )
    derived = et0_fao56_hourly(rs=rs, hour_mid=hours, **kw)  # type: ignore[arg-type]
    explicit = et0_fao56_hourly(rs=rs, hour_mid=hours, rs_rso_night=0.75, **kw)  # type: ignore[arg-type]
    evening = hours > 12
    np.testing.assert_allclose(derived[evening], explicit[evening], rtol=1e-12)
    # before any sunset in the series, the night hours use FAO-56 Example 19's 0.8
    default = et0_fao56_hourly(rs=rs, hour_mid=hours, rs_rso_night=0.8, **kw)  # type: ignore[arg-type]
    np.testing.assert_allclose(derived[hours < 5], default[hours < 5], rtol=1e-12)
    # daytime G = 0.1 Rn, night G = 0.5 Rn: night ET0 is small, day ET0 positive
    assert (derived[day] > derived[~day].max()).all()


# --- missing-data procedures (FAO-56 ch. 3) ---------------------------------------------------


def _hand_pm(
    tmax: float, tmin: float, ea: float, u2: float, rs: float, lat: float, z: float, doy: int
) -> float:
    """Eq. 6 written out once more, for checking the missing-data substitutions."""
    tm = (tmax + tmin) / 2
    es = (
        0.6108 * math.exp(17.27 * tmax / (tmax + 237.3)) + 0.6108 * math.exp(17.27 * tmin / (tmin + 237.3))
    ) / 2
    delta = 4098 * 0.6108 * math.exp(17.27 * tm / (tm + 237.3)) / (tm + 237.3) ** 2
    gamma = 0.665e-3 * 101.3 * ((293 - 0.0065 * z) / 293) ** 5.26
    phi, dr = math.radians(lat), 1 + 0.033 * math.cos(2 * math.pi * doy / 365)
    d = 0.409 * math.sin(2 * math.pi * doy / 365 - 1.39)
    ws = math.acos(-math.tan(phi) * math.tan(d))
    ra = (
        24
        * 60
        / math.pi
        * 0.082
        * dr
        * (ws * math.sin(phi) * math.sin(d) + math.cos(phi) * math.cos(d) * math.sin(ws))
    )
    rso = (0.75 + 2e-5 * z) * ra
    rnl = 4.903e-9 * ((tmax + 273.16) ** 4 + (tmin + 273.16) ** 4) / 2 * (0.34 - 0.14 * math.sqrt(ea))
    rnl *= 1.35 * min(rs / rso, 1.0) - 0.35
    rn = 0.77 * rs - rnl
    return (0.408 * delta * rn + gamma * 900 / (tm + 273) * u2 * (es - ea)) / (
        delta + gamma * (1 + 0.34 * u2)
    )


def _ra(lat: float, doy: int) -> float:
    return float(meteo.ra_daily(lat, doy))


def test_missing_radiation_humidity_and_wind_lyon_example_20_inputs() -> None:
    # FAO-56 Example 20 inputs (Lyon, July, 45°43'N, 200 m): only Tmax 26.6 and Tmin 14.8
    lat, z, doy = 45 + 43 / 60, 200.0, 196
    got = float(et0_fao56_daily(tmax=26.6, tmin=14.8, lat_deg=lat, elevation_m=z, doy=doy))
    rs = 0.16 * math.sqrt(26.6 - 14.8) * _ra(lat, doy)  # Eq. 50, interior
    assert rs == pytest.approx(22.3, abs=0.05)  # FAO-56 Example 20's Rs
    ea = 0.6108 * math.exp(17.27 * 14.8 / (14.8 + 237.3))  # Tdew = Tmin
    assert got == pytest.approx(_hand_pm(26.6, 14.8, ea, 2.0, rs, lat, z, doy), abs=1e-9)
    coastal = float(et0_fao56_daily(tmax=26.6, tmin=14.8, lat_deg=lat, elevation_m=z, doy=doy, krs=0.19))
    assert coastal > got


def test_missing_values_filled_per_element_in_order_of_preference() -> None:
    lat, z, doy = 30.0, 100.0, 200
    tmax, tmin, rh_max, rh_min = 32.0, 22.0, 90.0, 50.0
    e_min = 0.6108 * math.exp(17.27 * tmin / (tmin + 237.3))
    e_max = 0.6108 * math.exp(17.27 * tmax / (tmax + 237.3))
    rs_n = (0.25 + 0.5 * 8 / float(meteo.daylight_hours(lat, doy))) * _ra(lat, doy)
    rs_t = 0.16 * math.sqrt(tmax - tmin) * _ra(lat, doy)
    got = et0_fao56_daily(
        tmax=tmax, tmin=tmin, lat_deg=lat, elevation_m=z, doy=doy,
        ea=[1.5, np.nan, np.nan, np.nan, np.nan],
        rh_max=[rh_max, rh_max, rh_max, np.nan, rh_max],
        rh_min=[rh_min, rh_min, np.nan, np.nan, rh_min],
        rs=[15.0, np.nan, 15.0, 15.0, np.nan],
        n_hours=[np.nan, 8.0, np.nan, np.nan, np.nan],
        u2=[3.0, 3.0, np.nan, 3.0, 3.0],
    )  # fmt: skip
    want = [
        _hand_pm(tmax, tmin, 1.5, 3.0, 15.0, lat, z, doy),
        _hand_pm(tmax, tmin, (e_min * rh_max + e_max * rh_min) / 200, 3.0, rs_n, lat, z, doy),
        _hand_pm(tmax, tmin, e_min * rh_max / 100, 2.0, 15.0, lat, z, doy),
        _hand_pm(tmax, tmin, e_min, 3.0, 15.0, lat, z, doy),
        _hand_pm(tmax, tmin, (e_min * rh_max + e_max * rh_min) / 200, 3.0, rs_t, lat, z, doy),
    ]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    # without temperature there is no estimate
    assert np.isnan(et0_fao56_daily(tmax=None, tmin=20.0, lat_deg=lat, elevation_m=z, doy=doy))


def test_hourly_missing_wind_humidity_and_radiation() -> None:
    base = _example_19(rs_rso_night=0.8)
    no_wind = _example_19(rs_rso_night=0.8, u2=None)
    assert np.all(no_wind == _example_19(rs_rso_night=0.8, u2=2.0))
    assert not np.allclose(no_wind, base)
    assert np.isnan(_example_19(rs_rso_night=0.8, rh=None)).all()
    tdew = 24.0
    with_dew = _example_19(rs_rso_night=0.8, rh=None, tdew=tdew)
    rh = 100 * meteo.svp_kpa(tdew) / meteo.svp_kpa(np.array([38.0, 28.0]))
    np.testing.assert_allclose(with_dew, _example_19(rs_rso_night=0.8, rh=rh), rtol=1e-12)
    no_rs = _example_19(rs_rso_night=0.8, rs=[np.nan, np.nan])
    assert np.isnan(no_rs[0]) and no_rs[1] == pytest.approx(base[1])
    omitted = _example_19(rs_rso_night=0.8, rs=None)
    assert np.isnan(omitted[0]) and omitted[1] == pytest.approx(base[1])


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"rs": 250.0}, r"rs: 250 outside .*wrong unit"),
        ({"ea": 28.5}, "ea: 28.5 outside"),
        ({"rh_max": 140.0}, "rh_max"),
        ({"tmin": 30.0}, "tmin is above tmax"),
        ({"lat_deg": 120.0}, "lat_deg"),
        ({"doy": 100.5}, "whole number"),
        ({"doy": 0}, "doy"),
        ({"lat_deg": np.nan}, "required"),
        ({"tmax": np.ones(3), "tmin": np.zeros(2)}, "do not broadcast"),
        ({"tmax": "hot"}, "not numeric"),
        ({"krs": 1.6}, "krs"),
    ],
)
def test_daily_rejects_bad_inputs(kw: dict[str, object], match: str) -> None:
    args: dict[str, object] = dict(tmax=25.0, tmin=15.0, lat_deg=30.0, elevation_m=100.0, doy=150)
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        et0_fao56_daily(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"rs": [245.0, 0.0]}, "rs: 245"),
        ({"hour_mid": [14.5, 25.0]}, "hour_mid"),
        ({"lz_deg_west": -120.0}, "lz_deg_west"),
        ({"rs_rso_night": 1.5}, "rs_rso_night"),
        ({"period_h": 2.0}, "period_h"),
    ],
)
def test_hourly_rejects_bad_inputs(kw: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _example_19(**kw)


# --- pyet cross-check and vectorisation -------------------------------------------------------


def _weather(seed: int, n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    tmin = rng.uniform(-5, 25, n)
    rh_max = rng.uniform(60, 100, n)
    return {
        "tmin": tmin,
        "tmax": tmin + rng.uniform(2, 15, n),
        "rh_max": rh_max,
        "rh_min": rh_max * rng.uniform(0.3, 0.9, n),
        "u2": rng.uniform(0.5, 6, n),
        "frac": rng.uniform(0.3, 0.75, n),
    }


@pytest.mark.parametrize(("lat", "elev"), [(30.0, 300.0), (-23.5, 1500.0), (50.8, 100.0)])
def test_daily_matches_pyet(lat: float, elev: float) -> None:
    idx = pd.date_range("2023-01-01", periods=365, freq="D")
    w = _weather(int(lat * 10) % 97, len(idx))
    doy = idx.dayofyear.to_numpy()
    rs = meteo.ra_daily(lat, doy) * w["frac"]
    s = {k: pd.Series(v, idx) for k, v in w.items()}
    ref = pyet.pm_fao56(
        (s["tmax"] + s["tmin"]) / 2, s["u2"], rs=pd.Series(rs, idx), tmax=s["tmax"], tmin=s["tmin"],
        rhmax=s["rh_max"], rhmin=s["rh_min"], elevation=elev, lat=math.radians(lat), clip_zero=False,
    )  # fmt: skip
    got = et0_fao56_daily(
        tmax=w["tmax"], tmin=w["tmin"], rh_max=w["rh_max"], rh_min=w["rh_min"], u2=w["u2"], rs=rs,
        lat_deg=lat, elevation_m=elev, doy=doy,
    )  # fmt: skip
    np.testing.assert_allclose(got, ref.to_numpy(), rtol=1e-8, atol=1e-8)


def test_hargreaves_matches_pyet_up_to_its_latent_heat() -> None:
    idx = pd.date_range("2023-01-01", periods=365, freq="D")
    w = _weather(5, len(idx))
    tmean = (w["tmax"] + w["tmin"]) / 2
    ref = pyet.hargreaves(
        pd.Series(tmean, idx), pd.Series(w["tmax"], idx), pd.Series(w["tmin"], idx), math.radians(28.0),
        clip_zero=False,
    )  # fmt: skip
    got = et0_hargreaves(tmax=w["tmax"], tmin=w["tmin"], lat_deg=28.0, doy=idx.dayofyear.to_numpy())
    # pyet divides Ra by a temperature-dependent λ; FAO-56 Eq. 52 multiplies by the fixed 0.408
    lam = 2.501 - 0.002361 * tmean
    np.testing.assert_allclose(got, ref.to_numpy() * lam * 0.408, rtol=1e-9)


def test_daily_vectorised_equals_scalar_loop() -> None:
    rng = np.random.default_rng(3)
    w = _weather(3, 60)
    lat = rng.uniform(-60, 60, 60)
    doy = rng.integers(1, 366, 60)
    z = rng.uniform(0, 3000, 60)
    n_h = rng.uniform(0, 10, 60)
    rh_min = np.where(rng.random(60) < 0.3, np.nan, w["rh_min"])
    n_h = np.where(rng.random(60) < 0.3, np.nan, n_h)
    got = et0_fao56_daily(
        tmax=w["tmax"], tmin=w["tmin"], rh_max=w["rh_max"], rh_min=rh_min, u2=w["u2"],
        n_hours=n_h, lat_deg=lat, elevation_m=z, doy=doy,
    ).reshape(6, 10)  # fmt: skip
    for i in range(60):
        one = et0_fao56_daily(
            tmax=float(w["tmax"][i]), tmin=float(w["tmin"][i]), rh_max=float(w["rh_max"][i]),
            rh_min=None if np.isnan(rh_min[i]) else float(rh_min[i]), u2=float(w["u2"][i]),
            n_hours=None if np.isnan(n_h[i]) else float(n_h[i]), lat_deg=float(lat[i]),
            elevation_m=float(z[i]), doy=int(doy[i]),
        )  # fmt: skip
        assert got.ravel()[i] == pytest.approx(float(one), rel=1e-12)


def test_hourly_vectorised_over_stations_and_hours() -> None:
    hours = np.arange(48) % 24 + 0.5
    doy = np.where(np.arange(48) < 24, 200, 201)
    rng = np.random.default_rng(4)
    t = rng.uniform(15, 35, (3, 48))
    rh = rng.uniform(30, 95, (3, 48))
    lat = np.array([[22.0], [30.0], [40.0]])
    omega = meteo.hour_angle_mid_rad(hours, 240.0 - 113.0 + 120.0 - 120.0, 240.0, doy)
    ra, _ = meteo.ra_period(lat, doy, omega)
    rs = meteo.rso(50.0, ra) * rng.uniform(0.4, 1.0, (3, 48))
    kw = dict(u2=2.5, lon_deg_west=247.0, lz_deg_west=240.0, elevation_m=50.0)
    got = et0_fao56_hourly(t=t, rh=rh, rs=rs, lat_deg=lat, doy=doy, hour_mid=hours, **kw)  # type: ignore[arg-type]
    for i in range(3):
        row = et0_fao56_hourly(
            t=t[i], rh=rh[i], rs=rs[i], lat_deg=float(lat[i, 0]), doy=doy, hour_mid=hours, **kw
        )  # type: ignore[arg-type]
        np.testing.assert_allclose(got[i], row, rtol=1e-12)
    assert got.shape == (3, 48)
