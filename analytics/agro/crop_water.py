"""Crop water use: ETc = Kc ET0 with FAO-56 crop coefficients, and a daily root-zone water balance.

Kc follows the FAO-56 crop coefficient curve (Fig. 25, Eq. 66): Kc_ini through the initial
stage, a straight line to Kc_mid over crop development, Kc_mid through mid-season and a straight
line to Kc_end over the late season; for perennial citrus and tea the cycle repeats yearly. The
water balance is FAO-56 chapter 8 (Eq. 85): the root-zone depletion Dr grows with ETc and falls
with rain and irrigation; TAW = 1000 (θFC - θWP) Zr (Eq. 82), RAW = p TAW (Eq. 83) with p from
Table 22 adjusted for ETc (p = p_tab + 0.04 (5 - ETc)); beyond RAW the crop is stressed,
Ks = (TAW - Dr) / ((1 - p) TAW) (Eq. 84), and the irrigation need is the depletion to refill.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from analytics.agro.config import Crop

F64 = NDArray[np.float64]


def kc_curve(
    day_of_cycle: ArrayLike, crop: Crop, *, kc_mid: float | None = None, kc_end: float | None = None
) -> F64:
    """Kc on each day of the crop cycle (day 0 = first day of the initial stage).

    Days beyond the cycle wrap around (perennial crops). ``kc_mid``/``kc_end`` override the table
    values, e.g. with ``kc_climate_adjusted``.
    """
    d = np.asarray(day_of_cycle, dtype=np.float64)
    if (d[np.isfinite(d)] < 0).any():
        raise ValueError("day_of_cycle must be >= 0")
    l_ini, l_dev, l_mid, l_late = crop.stages_days
    total = l_ini + l_dev + l_mid + l_late
    d = np.mod(d, total)
    k_ini = crop.kc_ini
    k_mid = crop.kc_mid if kc_mid is None else kc_mid
    k_end = crop.kc_end if kc_end is None else kc_end
    xs = [0.0, l_ini, l_ini + l_dev, l_ini + l_dev + l_mid, total]
    ys = [k_ini, k_ini, k_mid, k_mid, k_end]
    return np.interp(d, xs, ys)


def kc_climate_adjusted(kc_table: float, u2: ArrayLike, rh_min: ArrayLike, height_m: float) -> F64:
    """Kc_mid / Kc_end for climates other than u2 = 2 m/s, RHmin = 45 % (FAO-56 Eq. 62/65),
    applied only to table values >= 0.45. ``u2``, ``rh_min``: means over the stage."""
    u = np.clip(np.asarray(u2, dtype=np.float64), 1.0, 6.0)
    rh = np.clip(np.asarray(rh_min, dtype=np.float64), 20.0, 80.0)
    h = float(np.clip(height_m, 0.1, 10.0))
    adj = (0.04 * (u - 2.0) - 0.004 * (rh - 45.0)) * (h / 3.0) ** 0.3
    return np.asarray(
        kc_table + adj if kc_table >= 0.45 else np.full(np.shape(adj), kc_table), dtype=np.float64
    )


@dataclass(frozen=True, slots=True)
class WaterBalance:
    """Daily results, each ``(n_fields, n_days)`` (or ``(n_days,)`` for one field)."""

    depletion_mm: F64  # root-zone depletion Dr at the end of the day, after irrigation
    ks: F64  # water stress coefficient used that day
    etc_adj_mm: F64  # Ks Kc ET0
    irrigation_mm: F64  # net irrigation need applied that day
    deep_percolation_mm: F64
    taw_mm: F64  # (n_fields,)
    raw_mm: F64  # p TAW with the day's p


def soil_water_balance(
    et0: ArrayLike,
    rain: ArrayLike,
    kc: ArrayLike,
    *,
    theta_fc: ArrayLike,
    theta_wp: ArrayLike,
    root_depth_m: ArrayLike,
    p: ArrayLike,
    initial_depletion_mm: ArrayLike = 0.0,
    runoff_fraction: float = 0.0,
    irrigate: bool = True,
    adjust_p: bool = True,
) -> WaterBalance:
    """Daily root-zone water balance (FAO-56 Eq. 85), vectorised over fields.

    ``et0`` (mm/day), ``rain`` (mm/day) and ``kc`` broadcast to ``(n_fields, n_days)`` (or
    ``(n_days,)``); ``theta_fc``/``theta_wp`` (m³/m³), ``root_depth_m`` and ``p`` are scalars or
    one per field. Each day: Ks from the depletion at the start of the day, ETc adj = Ks Kc ET0,
    Dr += ETc adj - effective rain (rain × (1 - runoff_fraction)); water beyond field capacity
    percolates (Dr >= 0); when ``irrigate`` and Dr > RAW at the end of the day, the net
    irrigation need Dr is applied and Dr returns to 0. Missing rain counts as 0; missing ET0
    as no water use that day.
    """
    e = np.asarray(et0, dtype=np.float64)
    one_field = e.ndim == 1 and np.ndim(rain) <= 1 and np.ndim(kc) <= 1
    try:
        e2, r2, k2 = np.broadcast_arrays(
            np.atleast_2d(e),
            np.atleast_2d(np.asarray(rain, dtype=np.float64)),
            np.atleast_2d(np.asarray(kc, dtype=np.float64)),
        )
    except ValueError:
        raise ValueError("et0, rain and kc must broadcast to (fields, days)") from None
    n_f, n_d = e2.shape
    if (e2[np.isfinite(e2)] < 0).any() or (r2[np.isfinite(r2)] < 0).any():
        raise ValueError("et0 and rain must be >= 0")
    if not 0.0 <= runoff_fraction < 1.0:
        raise ValueError("runoff_fraction must be in [0, 1)")

    def col(x: ArrayLike, name: str) -> F64:
        a = np.asarray(x, dtype=np.float64)
        if a.ndim == 0:
            return np.full(n_f, float(a))
        if a.shape != (n_f,):
            raise ValueError(f"{name}: a scalar or one value per field ({n_f}), got shape {a.shape}")
        return a

    fc, wp, zr, p_tab = (
        col(theta_fc, "theta_fc"),
        col(theta_wp, "theta_wp"),
        col(root_depth_m, "root_depth_m"),
        col(p, "p"),
    )
    if ((fc <= wp) | (wp < 0) | (fc > 0.7)).any():
        raise ValueError("need 0 <= theta_wp < theta_fc <= 0.7 (m³/m³, not %)")
    if ((zr <= 0) | (zr > 5)).any() or ((p_tab <= 0) | (p_tab >= 1)).any():
        raise ValueError("root_depth_m must be in (0, 5] m and p in (0, 1)")
    taw = 1000.0 * (fc - wp) * zr
    dr = np.clip(col(initial_depletion_mm, "initial_depletion_mm"), 0.0, taw)
    out = {k: np.zeros((n_f, n_d)) for k in ("dr", "ks", "etc", "irr", "dp", "raw")}
    for d in range(n_d):
        et0_d = np.nan_to_num(e2[:, d])
        kc_d = np.nan_to_num(k2[:, d])
        etc = kc_d * et0_d
        p_d = np.clip(p_tab + 0.04 * (5.0 - etc), 0.1, 0.8) if adjust_p else p_tab
        raw = p_d * taw
        ks = np.where(dr > raw, np.clip((taw - dr) / ((1.0 - p_d) * taw), 0.0, 1.0), 1.0)
        etc_adj = ks * etc
        dr = dr + etc_adj - np.nan_to_num(r2[:, d]) * (1.0 - runoff_fraction)
        dp = np.maximum(-dr, 0.0)
        dr = np.clip(dr, 0.0, taw)
        irr = np.where(irrigate & (dr > raw), dr, 0.0)
        dr = dr - irr
        for key, val in (("dr", dr), ("ks", ks), ("etc", etc_adj), ("irr", irr), ("dp", dp), ("raw", raw)):
            out[key][:, d] = val

    def shape(x: F64) -> F64:
        return x[0] if one_field else x

    return WaterBalance(
        shape(out["dr"]), shape(out["ks"]), shape(out["etc"]), shape(out["irr"]), shape(out["dp"]),
        taw, shape(out["raw"]),
    )  # fmt: skip
