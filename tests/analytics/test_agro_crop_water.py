"""Crop coefficients (FAO-56 Table 12 curves) and the daily root-zone water balance (ch. 8)."""

from __future__ import annotations

import numpy as np
import pytest

from analytics.agro import config, crop_water
from tests.analytics import naive_agro as naive


def test_kc_curve_citrus_stages_and_wraparound() -> None:
    c = config.CROPS["citrus_70"]  # Kc 0.70 / 0.65 / 0.70, stages 60/90/120/95 days
    days = [0, 59, 60, 105, 150, 200, 270, 317.5, 365, 365 + 105]
    np.testing.assert_allclose(
        crop_water.kc_curve(days, c), [0.70, 0.70, 0.70, 0.675, 0.65, 0.65, 0.65, 0.675, 0.70, 0.675]
    )
    tea = config.CROPS["tea"]
    assert crop_water.kc_curve(200, tea) == pytest.approx(1.00)
    assert crop_water.kc_curve(0, config.CROPS["tea_shaded"]) == pytest.approx(1.10)
    with pytest.raises(ValueError, match=">= 0"):
        crop_water.kc_curve(-1, c)


def test_kc_climate_adjustment_eq62() -> None:
    # Kc_mid 1.00 (tea), u2 = 3 m/s, RHmin = 30 %, h = 1.5 m
    want = 1.00 + (0.04 * (3 - 2) - 0.004 * (30 - 45)) * (1.5 / 3) ** 0.3
    assert crop_water.kc_climate_adjusted(1.00, 3.0, 30.0, 1.5) == pytest.approx(want, abs=1e-12)
    assert crop_water.kc_climate_adjusted(1.00, 2.0, 45.0, 1.5) == pytest.approx(1.00)
    assert crop_water.kc_climate_adjusted(0.40, 5.0, 20.0, 1.5) == pytest.approx(0.40)  # below 0.45: as is


def test_water_balance_by_hand() -> None:
    # TAW = 1000 (0.30 - 0.15) 1.0 = 150 mm, p = 0.5 → RAW = 75 mm; ETc = 5 mm/day, no rain
    et0 = np.full(20, 5.0)
    rain = np.zeros(20)
    rain[18] = 100.0
    wb = crop_water.soil_water_balance(
        et0, rain, 1.0, theta_fc=0.30, theta_wp=0.15, root_depth_m=1.0, p=0.5, adjust_p=False
    )
    assert wb.taw_mm[0] == pytest.approx(150.0)
    np.testing.assert_allclose(wb.depletion_mm[:15], 5.0 * np.arange(1, 16))
    assert wb.irrigation_mm[:15].sum() == 0.0
    assert wb.irrigation_mm[15] == pytest.approx(80.0) and wb.depletion_mm[15] == 0.0
    # the 100 mm rain on day 18 refills the 10 mm deficit plus that day's 5 mm; 85 mm percolate
    assert wb.deep_percolation_mm[18] == pytest.approx(100.0 - 15.0)
    # without irrigation the crop is stressed once Dr > RAW: Ks = (TAW - Dr) / ((1 - p) TAW)
    dry = crop_water.soil_water_balance(
        et0, 0.0, 1.0, theta_fc=0.30, theta_wp=0.15, root_depth_m=1.0, p=0.5, irrigate=False, adjust_p=False
    )
    assert dry.ks[15] == 1.0 and dry.ks[16] == pytest.approx((150 - 80) / 75)
    assert dry.etc_adj_mm[16] == pytest.approx(5 * (150 - 80) / 75)
    assert (np.diff(dry.depletion_mm) > 0).all() and dry.depletion_mm[-1] < 150


@pytest.mark.parametrize("seed", range(3))
def test_water_balance_vectorised_over_fields_matches_loop(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_f, n_d = 4, 120
    et0 = rng.uniform(1, 7, (n_f, n_d))
    et0[rng.random(et0.shape) < 0.05] = np.nan
    rain = np.where(rng.random((n_f, n_d)) < 0.2, rng.exponential(15, (n_f, n_d)), 0.0)
    kc = crop_water.kc_curve(np.arange(n_d) + 40, config.CROPS["citrus_50"])
    fc = rng.uniform(0.25, 0.40, n_f)
    wp = fc - rng.uniform(0.08, 0.15, n_f)
    zr = rng.uniform(0.8, 1.5, n_f)
    p = np.array([0.5, 0.4, 0.45, 0.5])
    d0 = rng.uniform(0, 40, n_f)
    wb = crop_water.soil_water_balance(
        et0,
        rain,
        kc,
        theta_fc=fc,
        theta_wp=wp,
        root_depth_m=zr,
        p=p,
        initial_depletion_mm=d0,
        runoff_fraction=0.1,
    )
    for i in range(n_f):
        dr, ks, etc, irr, dp = naive.water_balance(
            et0[i], rain[i], kc, fc[i], wp[i], zr[i], p[i], d0[i], 0.1, True, True
        )
        np.testing.assert_allclose(wb.depletion_mm[i], dr, atol=1e-9)
        np.testing.assert_allclose(wb.ks[i], ks, atol=1e-12)
        np.testing.assert_allclose(wb.etc_adj_mm[i], etc, atol=1e-9)
        np.testing.assert_allclose(wb.irrigation_mm[i], irr, atol=1e-9)
        np.testing.assert_allclose(wb.deep_percolation_mm[i], dp, atol=1e-9)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"theta_fc": 30.0}, "not %"),
        ({"p": 1.2}, "p in"),
        ({"root_depth_m": [1.0, 1.0]}, "one value per field"),
        ({"runoff_fraction": 1.0}, "runoff_fraction"),
    ],
)
def test_water_balance_rejects_bad_parameters(kw: dict[str, object], match: str) -> None:
    args: dict[str, object] = dict(theta_fc=0.3, theta_wp=0.15, root_depth_m=1.0, p=0.5)
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        crop_water.soil_water_balance(np.full(5, 4.0), 0.0, 0.7, **args)  # type: ignore[arg-type]


def test_crop_table_matches_fao56() -> None:
    # FAO-56 Table 12 (Kc) and Table 22 (p) values used by the platform's orchards and tea gardens
    c = config.CROPS
    assert (c["citrus_70"].kc_ini, c["citrus_70"].kc_mid, c["citrus_70"].kc_end) == (0.70, 0.65, 0.70)
    assert (c["citrus_50"].kc_ini, c["citrus_50"].kc_mid, c["citrus_50"].kc_end) == (0.65, 0.60, 0.65)
    assert (c["citrus_20"].kc_ini, c["citrus_20"].kc_mid, c["citrus_20"].kc_end) == (0.50, 0.45, 0.55)
    assert (c["tea"].kc_ini, c["tea"].kc_mid, c["tea"].kc_end, c["tea"].p) == (0.95, 1.00, 1.00, 0.40)
    assert (c["tea_shaded"].kc_ini, c["tea_shaded"].kc_mid, c["tea_shaded"].p) == (1.10, 1.15, 0.45)
    assert all(c[k].p == 0.50 for k in c if k.startswith("citrus"))
