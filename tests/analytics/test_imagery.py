"""analytics.imagery: indices, Sentinel-2 scaling, SCL mask, zonal statistics and fusion, each
checked against a plain per-element loop or a worked case."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analytics.imagery import (
    FusionConfig,
    canopy_fraction,
    compute_index,
    evi,
    fuse_blocks,
    ndvi,
    robust_z_others,
    s2_offset_applies,
    s2_reflectance,
    scl_clear,
    zonal_stats,
)
from analytics.imagery.fusion import DISEASE_OR_DAMAGE, NONE, UNEXPLAINED_DROP, WATER_STRESS
from analytics.imagery.select import RADIX_MIN, percentiles
from tests.sky.synth import naive_summary

RNG = np.random.default_rng(13)


def _nd(a: float, b: float) -> float:
    return math.nan if a + b == 0 else (a - b) / (a + b)


def test_indices_match_a_loop() -> None:
    bands = {k: RNG.uniform(0.0, 0.6, 400) for k in ("blue", "green", "red", "rededge", "nir")}
    bands["red"][:3] = 0.0
    bands["nir"][:3] = 0.0  # zero denominators -> NaN, not a warning
    for name, (a, b) in {
        "ndvi": ("nir", "red"),
        "ndre": ("nir", "rededge"),
        "ndwi": ("green", "nir"),
    }.items():
        got = compute_index(name, bands)
        want = [_nd(x, y) for x, y in zip(bands[a], bands[b], strict=True)]
        np.testing.assert_allclose(got, want, rtol=1e-12, equal_nan=True)
    got = compute_index("evi", bands)
    for i in range(400):
        n, r, bl = bands["nir"][i], bands["red"][i], bands["blue"][i]
        d = n + 6 * r - 7.5 * bl + 1
        want = math.nan if abs(d) <= 1e-6 else min(1.0, max(-1.0, 2.5 * (n - r) / d))
        assert (math.isnan(want) and math.isnan(got[i])) or got[i] == pytest.approx(want, rel=1e-12)


def test_known_values() -> None:
    assert ndvi(0.5, 0.1)[()] == pytest.approx(0.4 / 0.6)
    # EVI of a typical canopy: NIR 0.4, red 0.05, blue 0.03 -> 2.5*0.35/(0.4+0.3-0.225+1)
    assert evi(0.4, 0.05, 0.03)[()] == pytest.approx(0.875 / 1.475)
    with pytest.raises(ValueError, match="needs bands rededge"):
        compute_index("ndre", {"nir": [0.3]})


def test_s2_offset_by_processing_baseline() -> None:
    assert not s2_offset_applies("03.01")
    assert not s2_offset_applies(None)
    assert s2_offset_applies("04.00")
    assert s2_offset_applies("05.11")
    assert not s2_offset_applies("05.11", offset_applied=True)  # provider already harmonised
    with pytest.raises(ValueError, match="not a number"):
        s2_offset_applies("N0400")
    dn = np.array([0, 1000, 2000, 11000], dtype=np.uint16)
    np.testing.assert_allclose(s2_reflectance(dn, offset=True), [np.nan, 0.0, 0.1, 1.0], equal_nan=True)
    np.testing.assert_allclose(s2_reflectance(dn, offset=False), [np.nan, 0.1, 0.2, 1.1], equal_nan=True)
    # Forgetting the offset biases NDVI: red 0.05 / NIR 0.30 stored as DN 1500 / 4000.
    right = ndvi(s2_reflectance([4000], offset=True), s2_reflectance([1500], offset=True))[0]
    wrong = ndvi(s2_reflectance([4000], offset=False), s2_reflectance([1500], offset=False))[0]
    assert right == pytest.approx(0.25 / 0.35)
    assert wrong < right - 0.1


def test_scl_mask_classes() -> None:
    scl = np.arange(12)
    assert list(np.flatnonzero(~scl_clear(scl))) == [0, 1, 3, 8, 9, 10, 11]


def test_zonal_stats_match_a_loop() -> None:
    for _ in range(20):
        h, w = RNG.integers(1, 40, size=2)
        v = RNG.normal(0.5, 0.2, (h, w))
        v[RNG.random((h, w)) < 0.1] = np.nan
        inside = RNG.random((h, w)) < 0.6
        clear = RNG.random((h, w)) < 0.8
        got = zonal_stats(v, inside, clear)
        vals = [
            v[i, j]
            for i in range(h)
            for j in range(w)
            if inside[i, j] and clear[i, j] and np.isfinite(v[i, j])
        ]
        want = naive_summary(vals, int(inside.sum()))
        assert got.n_inside == want["n_inside"]
        assert got.valid == pytest.approx(want["valid"])
        if vals:
            for k in ("mean", "median", "p10", "p90"):
                assert getattr(got, k) == pytest.approx(want[k], rel=1e-12, abs=1e-15), k
        else:
            assert math.isnan(got.mean)


@pytest.mark.parametrize("case", range(12))
def test_radix_percentiles_equal_numpy_bit_for_bit(case: int) -> None:
    """Drone-sized float32 blocks: the same numbers as np.percentile (not approximately: equal),
    with negatives, repeated values, zeros of both signs and the extreme percentiles."""
    rng = np.random.default_rng(case)
    n = RADIX_MIN + int(rng.integers(0, 3)) if case % 4 == 0 else int(rng.integers(RADIX_MIN, 4 * RADIX_MIN))
    v = [
        rng.normal(0.5, 0.1, n),
        rng.uniform(-1, 1, n),
        rng.integers(-3, 4, n) / 4,  # few distinct values, +0 and -0 among them
        -rng.random(n) * 1e-3,
    ][case % 4].astype(np.float32)
    if case % 4 == 2:
        v[::7] = -0.0
    before = v.copy()
    qs = [10.0, 50.0, 90.0] if case % 2 else [0.0, 0.1, 10.0, 33.3, 50.0, 90.0, 99.99, 100.0]
    got = percentiles(v, qs)
    want = np.percentile(before, qs)
    assert got.dtype == want.dtype and np.array_equal(got, want)
    assert np.array_equal(v, before)  # never reordered


def test_empty_block_and_canopy() -> None:
    z = zonal_stats(np.ones((3, 3)), np.zeros((3, 3), bool))
    assert z.valid == 0 and z.n_inside == 0 and math.isnan(z.median)
    v = np.array([[0.1, 0.5], [0.45, np.nan]])
    assert canopy_fraction(v, np.ones((2, 2), bool), threshold=0.4) == pytest.approx(2 / 3)


def test_robust_z_against_others_matches_a_loop() -> None:
    x = RNG.normal(0.6, 0.05, 12)
    x[3] = np.nan
    got = robust_z_others(x, mad_floor=0.0, min_others=3)
    for i in range(12):
        others = np.array([x[j] for j in range(12) if j != i and np.isfinite(x[j])])
        if not np.isfinite(x[i]):
            assert np.isnan(got[i])
            continue
        med = float(np.median(others))
        mad = 1.4826 * float(np.median(np.abs(others - med)))
        assert got[i] == pytest.approx((x[i] - med) / mad)


def test_fusion_flags_a_synthetic_farm() -> None:
    """Eight blocks, a hazy date lowers them all by 0.1; block 2 falls by 0.25 more on dry soil,
    block 5 on wet soil, block 6 with no probe; block 7 is always sparse (not flagged)."""
    prev = np.array([0.70, 0.72, 0.71, 0.69, 0.73, 0.70, 0.71, 0.40])
    now = prev - 0.10 + RNG.normal(0, 0.005, 8)
    now[[2, 5, 6]] -= 0.25
    vwc = np.array([25.0, 26.0, 12.0, 24.0, np.nan, 38.0, np.nan, 25.0])
    ks = np.full(8, np.nan)
    ks[4] = 0.6  # block 4's water balance is dry, but its NDVI is fine: no flag
    res = fuse_blocks(now, ndvi_prev=prev, soil_vwc=vwc, ks=ks)
    assert list(res.flag) == [NONE, NONE, WATER_STRESS, NONE, NONE, DISEASE_OR_DAMAGE, UNEXPLAINED_DROP, NONE]
    assert "water stress" in res.reasons[2] and "12.0 %" in res.reasons[2]
    assert "disease or damage" in res.reasons[5]
    assert "no soil moisture" in res.reasons[6]
    # Without the previous date the always-sparse block 7 falls against the others.
    level = fuse_blocks(now, soil_vwc=vwc)
    assert level.flag[7] != NONE
    # The water balance alone can say "dry".
    only_ks = fuse_blocks(now, ndvi_prev=prev, ks=np.where(np.arange(8) == 6, 0.5, 1.0))
    assert only_ks.flag[6] == WATER_STRESS and only_ks.flag[5] == DISEASE_OR_DAMAGE


def test_fusion_needs_enough_blocks() -> None:
    res = fuse_blocks([0.7, 0.2, 0.7], config=FusionConfig(min_blocks=3))
    assert list(res.flag) == [NONE] * 3 and np.isnan(res.z).all()
    with pytest.raises(ValueError, match="one value per block"):
        fuse_blocks([0.7, 0.6, 0.5, 0.4], soil_vwc=[1.0, 2.0])


def test_polygon_mask_matches_point_in_polygon() -> None:
    from shapely.geometry import Point, Polygon

    from analytics.imagery.mask import polygon_mask

    for k in range(15):
        n = int(RNG.integers(3, 9))
        ang = np.sort(RNG.uniform(0, 2 * np.pi, n))
        rad = RNG.uniform(5, 20, n)
        outer = np.column_stack([25 + rad * np.cos(ang), 22 + rad * np.sin(ang)])
        hole = np.array([[22.3, 20.1], [27.7, 20.4], [26.2, 24.9]]) if k % 3 == 0 else None
        if hole is not None and not Polygon(outer).contains(Polygon(hole)):
            hole = None
        poly = Polygon(outer, [hole] if hole is not None else None)
        got = polygon_mask([outer] + ([hole] if hole is not None else []), (45, 50))
        for r in range(45):
            for c in range(50):
                assert got[r, c] == poly.contains(Point(c + 0.5, r + 0.5)), (k, r, c)
    # A square beyond the grid's edges is clipped; a degenerate ring masks nothing.
    sq = [[-5.0, -5.0], [5.2, -5.0], [5.2, 3.7], [-5.0, 3.7]]
    m = polygon_mask([sq], (10, 10))
    assert m[:4, :5].all() and m.sum() == 20
    assert not polygon_mask([[[1, 1], [2, 2]]], (5, 5)).any()
