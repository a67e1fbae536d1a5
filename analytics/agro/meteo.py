"""FAO-56 chapter 3 building blocks: pressure, vapour pressure, radiation (all vectorised).

Units as FAO-56: °C, kPa, MJ m-2 per day or hour, radians inside, degrees at the interface.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from analytics.agro.config import ALBEDO, ANGSTROM_AS, ANGSTROM_BS, GSC, KELVIN, SIGMA_DAY

F64 = NDArray[np.float64]


def _a(x: ArrayLike) -> F64:
    return np.asarray(x, dtype=np.float64)


def pressure_kpa(elevation_m: ArrayLike) -> F64:
    """Atmospheric pressure from elevation (Eq. 7)."""
    return 101.3 * ((293.0 - 0.0065 * _a(elevation_m)) / 293.0) ** 5.26


def psychrometric_kpa_c(elevation_m: ArrayLike) -> F64:
    """Psychrometric constant γ (Eq. 8)."""
    return 0.665e-3 * pressure_kpa(elevation_m)


def svp_kpa(t_c: ArrayLike) -> F64:
    """Saturation vapour pressure e°(T) (Eq. 11)."""
    t = _a(t_c)
    return 0.6108 * np.exp(17.27 * t / (t + 237.3))


def svp_slope_kpa_c(t_c: ArrayLike) -> F64:
    """Slope of the saturation vapour pressure curve Δ at T (Eq. 13)."""
    t = _a(t_c)
    return 4098.0 * svp_kpa(t) / (t + 237.3) ** 2


def ea_from_rh(
    tmax: ArrayLike, tmin: ArrayLike, rh_max: ArrayLike | None = None, rh_min: ArrayLike | None = None
) -> F64:
    """Actual vapour pressure from RHmax and RHmin (Eq. 17); from RHmax alone (Eq. 18)."""
    if rh_max is None:
        raise ValueError("ea_from_rh needs rh_max")
    e_min = svp_kpa(tmin) * _a(rh_max) / 100.0
    if rh_min is None:
        return e_min
    return (e_min + svp_kpa(tmax) * _a(rh_min) / 100.0) / 2.0


def ea_from_rh_mean(tmax: ArrayLike, tmin: ArrayLike, rh_mean: ArrayLike) -> F64:
    """Actual vapour pressure from mean relative humidity (Eq. 19, the less preferred form)."""
    return _a(rh_mean) / 100.0 * (svp_kpa(tmax) + svp_kpa(tmin)) / 2.0


def inverse_distance(doy: ArrayLike) -> F64:
    """Inverse relative Earth-Sun distance dr (Eq. 23)."""
    return 1.0 + 0.033 * np.cos(2.0 * np.pi / 365.0 * _a(doy))


def declination_rad(doy: ArrayLike) -> F64:
    """Solar declination δ (Eq. 24)."""
    return 0.409 * np.sin(2.0 * np.pi / 365.0 * _a(doy) - 1.39)


def sunset_angle_rad(lat_rad: ArrayLike, decl_rad: ArrayLike) -> F64:
    """Sunset hour angle ωs (Eq. 25), clipped for polar day and night."""
    return _a(np.arccos(np.clip(-np.tan(_a(lat_rad)) * np.tan(_a(decl_rad)), -1.0, 1.0)))


def ra_daily(lat_deg: ArrayLike, doy: ArrayLike) -> F64:
    """Extraterrestrial radiation for a day, MJ m-2 day-1 (Eq. 21)."""
    phi = np.radians(_a(lat_deg))
    d = declination_rad(doy)
    ws = sunset_angle_rad(phi, d)
    dr = inverse_distance(doy)
    return _a(
        24.0 * 60.0 / np.pi * GSC * dr * (ws * np.sin(phi) * np.sin(d) + np.cos(phi) * np.cos(d) * np.sin(ws))
    )


def daylight_hours(lat_deg: ArrayLike, doy: ArrayLike) -> F64:
    """Maximum possible sunshine duration N (Eq. 34)."""
    return 24.0 / np.pi * sunset_angle_rad(np.radians(_a(lat_deg)), declination_rad(doy))


def seasonal_correction_h(doy: ArrayLike) -> F64:
    """Seasonal correction for solar time Sc, hours (Eqs. 32-33)."""
    b = 2.0 * np.pi * (_a(doy) - 81.0) / 364.0
    return 0.1645 * np.sin(2 * b) - 0.1255 * np.cos(b) - 0.025 * np.sin(b)


def hour_angle_mid_rad(
    hour_mid: ArrayLike, lon_deg_west: ArrayLike, lz_deg_west: ArrayLike, doy: ArrayLike
) -> F64:
    """Solar time angle ω at the midpoint of the period (Eq. 31)."""
    t = _a(hour_mid) + 0.06667 * (_a(lz_deg_west) - _a(lon_deg_west)) + seasonal_correction_h(doy)
    return np.pi / 12.0 * (t - 12.0)


def ra_period(
    lat_deg: ArrayLike,
    doy: ArrayLike,
    omega_mid: ArrayLike,
    period_h: float = 1.0,
) -> tuple[F64, NDArray[np.bool_]]:
    """Extraterrestrial radiation for an hourly or shorter period, MJ m-2 per period (Eq. 28),
    and whether the sun is up at the period's midpoint (|ω| <= ωs; otherwise Ra = 0, FAO-56).
    """
    phi = np.radians(_a(lat_deg))
    d = declination_rad(doy)
    ws = sunset_angle_rad(phi, d)
    w = _a(omega_mid)
    # bring ω to [-π, π) so a midnight-crossing clock does not matter
    w = (w + np.pi) % (2 * np.pi) - np.pi
    w1 = np.clip(w - np.pi * period_h / 24.0, -ws, ws)  # Eq. 29, limited to daylight
    w2 = np.clip(w + np.pi * period_h / 24.0, -ws, ws)  # Eq. 30
    ra = (
        12.0
        * 60.0
        / np.pi
        * GSC
        * inverse_distance(doy)
        * ((w2 - w1) * np.sin(phi) * np.sin(d) + np.cos(phi) * np.cos(d) * (np.sin(w2) - np.sin(w1)))
    )
    day = np.abs(w) <= ws
    return np.where(day, np.maximum(ra, 0.0), 0.0), day


def rs_from_sunshine(n_hours: ArrayLike, daylight_h: ArrayLike, ra: ArrayLike) -> F64:
    """Solar radiation from sunshine hours, Angstrom (Eq. 35)."""
    return (ANGSTROM_AS + ANGSTROM_BS * _a(n_hours) / _a(daylight_h)) * _a(ra)


def rs_from_temperature(tmax: ArrayLike, tmin: ArrayLike, ra: ArrayLike, krs: float) -> F64:
    """Solar radiation from the temperature range, Hargreaves' radiation formula (Eq. 50)."""
    return krs * np.sqrt(np.maximum(_a(tmax) - _a(tmin), 0.0)) * _a(ra)


def rso(elevation_m: ArrayLike, ra: ArrayLike) -> F64:
    """Clear-sky solar radiation (Eq. 37)."""
    return (0.75 + 2e-5 * _a(elevation_m)) * _a(ra)


def net_shortwave(rs: ArrayLike) -> F64:
    """Net solar radiation for the grass reference (Eq. 38)."""
    return (1.0 - ALBEDO) * _a(rs)


def net_longwave(t4_mean_k: ArrayLike, ea: ArrayLike, rs_rso: ArrayLike, sigma: float = SIGMA_DAY) -> F64:
    """Net outgoing longwave radiation (Eq. 39) from the mean of T_K**4, ea and Rs/Rso (<= 1)."""
    ratio = np.minimum(_a(rs_rso), 1.0)
    return sigma * _a(t4_mean_k) * (0.34 - 0.14 * np.sqrt(_a(ea))) * (1.35 * ratio - 0.35)


def kelvin4(t_c: ArrayLike) -> F64:
    return (_a(t_c) + KELVIN) ** 4


def wind_2m(uz: ArrayLike, z_m: ArrayLike) -> F64:
    """Wind speed at 2 m from a measurement at ``z_m`` metres (Eq. 47)."""
    return _a(uz) * 4.87 / np.log(67.8 * _a(z_m) - 5.42)


def soil_heat_flux_monthly(
    t_prev: ArrayLike, *, t_next: ArrayLike | None = None, t_this: ArrayLike | None = None
) -> F64:
    """Monthly soil heat flux: 0.07 (T[i+1] - T[i-1]) (Eq. 43), or 0.14 (T[i] - T[i-1]) when the
    next month is not known (Eq. 44). Mean monthly air temperatures in °C."""
    if t_next is not None:
        return 0.07 * (_a(t_next) - _a(t_prev))
    if t_this is None:
        raise ValueError("soil_heat_flux_monthly needs t_next (Eq. 43) or t_this (Eq. 44)")
    return 0.14 * (_a(t_this) - _a(t_prev))


def sun_times_utc(day: ArrayLike, lat_deg: ArrayLike, lon_deg_east: ArrayLike) -> tuple[F64, F64]:
    """Sunrise and sunset (Unix s) of calendar day ``day`` (days since 1970-01-01) at a place:
    solar noon from the longitude and the seasonal correction (Eqs. 32-33), half the daylight
    hours N (Eq. 34) either side. Within about 15 minutes (no refraction): enough to bound a night."""
    d = np.floor(_a(day))
    dates = d.astype(np.int64).astype("datetime64[D]")
    doy = (dates - dates.astype("datetime64[Y]")).astype(np.int64) + 1
    noon_h = 12.0 - _a(lon_deg_east) / 15.0 - seasonal_correction_h(doy)
    half = daylight_hours(lat_deg, doy) / 2.0
    midnight = d * 86400.0
    return midnight + (noon_h - half) * 3600.0, midnight + (noon_h + half) * 3600.0
