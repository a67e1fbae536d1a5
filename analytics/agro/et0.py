"""Reference evapotranspiration ET0: FAO-56 Penman-Monteith daily (Eq. 6) and hourly (Eq. 53),
the FAO-56 missing-data procedures, and Hargreaves (Eq. 52).

All inputs broadcast together (scalars, or arrays of any shape); a missing input is ``None`` or
NaN and is filled per element by the FAO-56 chapter 3 procedures:

* humidity: ``ea`` if given, else RHmax and RHmin (Eq. 17), else RHmax alone (Eq. 18), else
  the dew point taken as Tmin (Eq. 48), optionally ``dew_offset_c`` lower for arid sites;
* radiation: ``rs`` if given, else sunshine hours (Eq. 35), else the temperature range with
  kRs (Eq. 50);
* wind: 2 m/s.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from analytics.agro import meteo
from analytics.agro.config import (
    DEFAULT_U2,
    HOURLY_G_DAY,
    HOURLY_G_NIGHT,
    KRS_INTERIOR,
    NIGHT_RATIO_WINDOW_H,
    RS_RSO_NIGHT_DEFAULT,
    SIGMA_HOUR,
)
from analytics.agro.inputs import arr, broadcast, check_doy, check_range

F64 = NDArray[np.float64]


def _fill(a: F64, default: F64 | float) -> F64:
    return np.where(np.isnan(a), default, a)


def _penman_monteith(
    delta: F64, gamma: F64, rn: F64, g: F64, t_mean: F64, u2: F64, vpd: F64, cn: float
) -> F64:
    """Eq. 6 (cn = 900, daily) / Eq. 53 (cn = 37, hourly)."""
    num = 0.408 * delta * (rn - g) + gamma * cn / (t_mean + 273.0) * u2 * vpd
    return num / (delta + gamma * (1.0 + 0.34 * u2))


def et0_fao56_daily(
    *,
    tmax: ArrayLike,
    tmin: ArrayLike,
    rh_max: ArrayLike | None = None,
    rh_min: ArrayLike | None = None,
    ea: ArrayLike | None = None,
    u2: ArrayLike | None = None,
    rs: ArrayLike | None = None,
    n_hours: ArrayLike | None = None,
    lat_deg: ArrayLike,
    elevation_m: ArrayLike,
    doy: ArrayLike,
    g: ArrayLike | None = 0.0,
    krs: float = KRS_INTERIOR,
    dew_offset_c: float = 0.0,
) -> F64:
    """FAO-56 Penman-Monteith ET0 for daily (or monthly-mean daily) data, mm/day (Eq. 6).

    ``tmax``/``tmin`` °C; ``rh_max``/``rh_min`` %; ``ea`` kPa; ``u2`` m/s at 2 m; ``rs`` MJ m-2
    day-1 or ``n_hours`` of sunshine; ``lat_deg`` (north positive); ``elevation_m``; ``doy``
    1..366 (for monthly data, the middle day of the month); ``g`` soil heat flux MJ m-2 day-1
    (0 for a day; ``meteo.soil_heat_flux_monthly`` for months). ``krs``: 0.16 interior, 0.19
    coastal (Eq. 50). NaN where Tmax or Tmin is missing.
    """
    a = broadcast(
        tmax=arr("tmax", tmax),
        tmin=arr("tmin", tmin),
        rh_max=arr("rh_max", rh_max),
        rh_min=arr("rh_min", rh_min),
        ea=arr("ea", ea),
        u2=arr("u2", u2),
        rs=arr("rs", rs),
        n_hours=arr("n_hours", n_hours),
        lat_deg=arr("lat_deg", lat_deg),
        elevation_m=arr("elevation_m", elevation_m),
        doy=arr("doy", doy),
        g=arr("g", g),
    )
    for name in ("tmax", "tmin", "rh_max", "rh_min", "ea", "u2", "n_hours", "g"):
        check_range(name, a[name])
    check_range("rs", a["rs"], "rs_day")
    check_range("lat_deg", a["lat_deg"], allow_nan=False)
    check_range("elevation_m", a["elevation_m"], allow_nan=False)
    check_doy(a["doy"])
    if not 0.0 < krs < 0.3:
        raise ValueError(f"krs: {krs} outside 0..0.3 (FAO-56: 0.16 interior, 0.19 coastal)")
    with np.errstate(invalid="ignore"):
        if (a["tmin"] > a["tmax"]).any():
            raise ValueError("tmin is above tmax")
    tmax_, tmin_ = a["tmax"], a["tmin"]
    t_mean = (tmax_ + tmin_) / 2.0  # Eq. 9
    gamma = meteo.psychrometric_kpa_c(a["elevation_m"])
    delta = meteo.svp_slope_kpa_c(t_mean)
    es = (meteo.svp_kpa(tmax_) + meteo.svp_kpa(tmin_)) / 2.0  # Eq. 12

    rh_max_, rh_min_ = np.minimum(a["rh_max"], 100.0), np.minimum(a["rh_min"], 100.0)
    ea_both = meteo.ea_from_rh(tmax_, tmin_, rh_max_, rh_min_)
    ea_max = meteo.ea_from_rh(tmax_, tmin_, rh_max_)
    ea_dew = meteo.svp_kpa(tmin_ - dew_offset_c)  # Eq. 48, Tdew ≈ Tmin
    ea_ = np.where(
        np.isfinite(a["ea"]),
        a["ea"],
        np.where(np.isfinite(ea_both), ea_both, np.where(np.isfinite(ea_max), ea_max, ea_dew)),
    )

    ra = meteo.ra_daily(a["lat_deg"], a["doy"])
    n_day = meteo.daylight_hours(a["lat_deg"], a["doy"])
    with np.errstate(invalid="ignore", divide="ignore"):
        rs_sun = meteo.rs_from_sunshine(np.minimum(a["n_hours"], n_day), n_day, ra)
    rs_temp = meteo.rs_from_temperature(tmax_, tmin_, ra, krs)
    rs_ = np.where(np.isfinite(a["rs"]), a["rs"], np.where(np.isfinite(rs_sun), rs_sun, rs_temp))
    rso = meteo.rso(a["elevation_m"], ra)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(rso > 0, rs_ / rso, 1.0)
    t4 = (meteo.kelvin4(tmax_) + meteo.kelvin4(tmin_)) / 2.0
    rn = meteo.net_shortwave(rs_) - meteo.net_longwave(t4, ea_, ratio)  # Eq. 40

    u2_ = _fill(a["u2"], DEFAULT_U2)
    g_ = _fill(a["g"], 0.0)
    return _penman_monteith(delta, gamma, rn, g_, t_mean, u2_, es - ea_, 900.0)


def _night_ratio_from_series(ratio: F64, day: NDArray[np.bool_], omega: F64, ws: F64) -> F64:
    """Carry Rs/Rso forward along the last axis from the latest daytime period 2-3 h before
    sunset into the following night periods (FAO-56 ch. 4, hourly time step)."""
    lo_h, hi_h = NIGHT_RATIO_WINDOW_H
    before_sunset_h = (ws - omega) * 12.0 / np.pi
    ref = day & (before_sunset_h >= lo_h - 1e-9) & (before_sunset_h <= hi_h + 1e-9) & np.isfinite(ratio)
    if ratio.ndim == 0:
        return np.array(RS_RSO_NIGHT_DEFAULT)
    n = ratio.shape[-1]
    idx = np.where(ref, np.arange(n), -1)
    last = np.maximum.accumulate(idx, axis=-1)
    carried = np.take_along_axis(ratio, np.maximum(last, 0), axis=-1)
    return np.where(last >= 0, carried, RS_RSO_NIGHT_DEFAULT)


def et0_fao56_hourly(
    *,
    t: ArrayLike,
    rh: ArrayLike | None = None,
    u2: ArrayLike | None = None,
    rs: ArrayLike | None = None,
    lat_deg: ArrayLike,
    lon_deg_west: ArrayLike,
    lz_deg_west: ArrayLike,
    elevation_m: ArrayLike,
    doy: ArrayLike,
    hour_mid: ArrayLike,
    rs_rso_night: ArrayLike | None = None,
    tdew: ArrayLike | None = None,
    period_h: float = 1.0,
) -> F64:
    """FAO-56 Penman-Monteith ET0 for hourly (or shorter) periods, mm per hour (Eq. 53).

    ``t`` °C and ``rh`` % are the period means; ``u2`` m/s; ``rs`` MJ m-2 hour-1; ``lon_deg_west``
    is FAO-56's Lm and ``lz_deg_west`` its Lz (degrees west of Greenwich, 0..360: Lz = 240 for
    China Standard Time, UTC+8); ``hour_mid`` the standard clock time at the period's midpoint
    (e.g. 14.5 for 14:00-15:00); ``period_h`` the period length. Soil heat flux is 0.1 Rn by day
    and 0.5 Rn by night (Eqs. 45-46); a period is night when the sun is below the horizon at its
    midpoint (then Ra = 0). At night Rs/Rso is ``rs_rso_night`` or, when absent, carried forward
    along the last axis (time order) from the daytime period 2-3 h before sunset; with no such
    period earlier in the series 0.8 is used (FAO-56 Example 19).

    Missing values: ``u2`` → 2 m/s; ``rh`` → ea from the dew point ``tdew`` (FAO-56: the day's
    Tmin) when given, else NaN; ``rs`` → NaN by day (FAO-56 gives no hourly radiation estimate),
    0 by night.
    """
    a = broadcast(
        t=arr("t", t),
        rh=arr("rh", rh),
        u2=arr("u2", u2),
        rs=arr("rs", rs),
        lat_deg=arr("lat_deg", lat_deg),
        lon_deg_west=arr("lon_deg_west", lon_deg_west),
        lz_deg_west=arr("lz_deg_west", lz_deg_west),
        elevation_m=arr("elevation_m", elevation_m),
        doy=arr("doy", doy),
        hour_mid=arr("hour_mid", hour_mid),
        rs_rso_night=arr("rs_rso_night", rs_rso_night),
        tdew=arr("tdew", tdew),
    )
    for name in ("t", "rh", "u2"):
        check_range(name, a[name])
    check_range("tdew", a["tdew"], "t")
    check_range("rs", a["rs"], "rs_hour")
    check_range("rs_rso_night", a["rs_rso_night"], "rs_rso")
    for name in ("lat_deg", "elevation_m", "hour_mid"):
        check_range(name, a[name], allow_nan=False)
    for name in ("lon_deg_west", "lz_deg_west"):
        check_range(name, a[name], "lon_deg", allow_nan=False)
    check_doy(a["doy"])
    if not 0.0 < period_h <= 1.0:
        raise ValueError(f"period_h: {period_h} h; Eq. 53 is for periods of one hour or shorter")

    t_ = a["t"]
    gamma = meteo.psychrometric_kpa_c(a["elevation_m"])
    delta = meteo.svp_slope_kpa_c(t_)
    es = meteo.svp_kpa(t_)
    ea_ = np.where(np.isfinite(a["rh"]), es * np.minimum(a["rh"], 100.0) / 100.0, meteo.svp_kpa(a["tdew"]))

    omega = meteo.hour_angle_mid_rad(a["hour_mid"], a["lon_deg_west"], a["lz_deg_west"], a["doy"])
    omega = (omega + np.pi) % (2 * np.pi) - np.pi
    ra, day = meteo.ra_period(a["lat_deg"], a["doy"], omega, period_h)
    ws = meteo.sunset_angle_rad(np.radians(a["lat_deg"]), meteo.declination_rad(a["doy"]))
    rso = meteo.rso(a["elevation_m"], ra)
    rs_ = np.where(day, a["rs"], _fill(a["rs"], 0.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio_day = np.where(rso > 0, np.minimum(rs_ / rso, 1.0), np.nan)
    if np.isfinite(a["rs_rso_night"]).any():
        night_ratio = _fill(a["rs_rso_night"], RS_RSO_NIGHT_DEFAULT)
    else:
        night_ratio = _night_ratio_from_series(ratio_day, day, omega, ws)
    ratio = np.where(day, ratio_day, night_ratio)
    rn = meteo.net_shortwave(rs_) - meteo.net_longwave(meteo.kelvin4(t_), ea_, ratio, SIGMA_HOUR * period_h)
    g = np.where(day, HOURLY_G_DAY, HOURLY_G_NIGHT) * rn
    u2_ = _fill(a["u2"], DEFAULT_U2)
    return _penman_monteith(delta, gamma, rn, g, t_, u2_, es - ea_, 37.0 * period_h)


def et0_hargreaves(
    *,
    tmax: ArrayLike,
    tmin: ArrayLike,
    lat_deg: ArrayLike,
    doy: ArrayLike,
    tmean: ArrayLike | None = None,
) -> F64:
    """Hargreaves ET0, mm/day (Eq. 52): 0.0023 (Tmean + 17.8) (Tmax - Tmin)^0.5 Ra, Ra in mm/day.

    ``tmean`` defaults to (Tmax + Tmin) / 2. FAO-56 recommends it only when Penman-Monteith
    cannot be applied even with the missing-data procedures.
    """
    a = broadcast(
        tmax=arr("tmax", tmax),
        tmin=arr("tmin", tmin),
        lat_deg=arr("lat_deg", lat_deg),
        doy=arr("doy", doy),
        tmean=arr("tmean", tmean),
    )
    check_range("tmax", a["tmax"])
    check_range("tmin", a["tmin"])
    check_range("tmean", a["tmean"], "t")
    check_range("lat_deg", a["lat_deg"], allow_nan=False)
    check_doy(a["doy"])
    with np.errstate(invalid="ignore"):
        if (a["tmin"] > a["tmax"]).any():
            raise ValueError("tmin is above tmax")
    tm = np.where(np.isfinite(a["tmean"]), a["tmean"], (a["tmax"] + a["tmin"]) / 2.0)
    ra_mm = 0.408 * meteo.ra_daily(a["lat_deg"], a["doy"])  # MJ → mm of evaporated water
    return 0.0023 * (tm + 17.8) * np.sqrt(a["tmax"] - a["tmin"]) * ra_mm
