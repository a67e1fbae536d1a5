"""Per-block statistics of generated scenes, each checked against a plain per-pixel loop."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import shapely
from pyproj import Transformer
from shapely.geometry import shape

from sky.items import item_from_geotiff, read_item, scene_from_item
from sky.process import compute_blocks
from store.sky import Block
from tests.sky.synth import ORIGIN, naive_block_stats, naive_summary, s2_scene, utm_polygon, write_tif

X0, Y0 = ORIGIN  # scene of 600 x 600 10 m pixels: x 600,000..606,000, y 2,494,000..2,500,000
CLOUDS = [(10, 40, 10, 40), (150, 200, 100, 180)]  # 20 m pixel rows/cols
SHAPES = {
    "a": [(X0 + 123, Y0 - 123), (X0 + 901, Y0 - 300), (X0 + 750, Y0 - 900), (X0 + 200, Y0 - 700)],
    "cloudy": [
        (X0 + 2800, Y0 - 3050),
        (X0 + 4200, Y0 - 3050),
        (X0 + 4200, Y0 - 3900),
        (X0 + 2800, Y0 - 3900),
    ],
    "edge": [(X0 - 200, Y0 - 500), (X0 + 400, Y0 - 500), (X0 + 400, Y0 - 1000), (X0 - 200, Y0 - 1000)],
    "outside": [(X0 - 900, Y0 + 900), (X0 - 300, Y0 + 900), (X0 - 300, Y0 + 300)],
    "tri": [(X0 + 4000, Y0 - 4000), (X0 + 5500, Y0 - 4100), (X0 + 4300, Y0 - 5800)],
}


def blocks_of(geoms: dict[str, dict[str, object]]) -> list[Block]:
    return [Block("f", k, k, "field", g, 1.0, shape(g).bounds) for k, g in geoms.items()]  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def geoms() -> dict[str, dict[str, object]]:
    return {k: utm_polygon(v) for k, v in SHAPES.items()}


def check(res_stats: object, want: dict[str, float]) -> None:
    assert res_stats.n_inside == want["n_inside"]  # type: ignore[attr-defined]
    assert res_stats.valid == pytest.approx(want["valid"], abs=1e-12)  # type: ignore[attr-defined]
    for k in ("mean", "median", "p10", "p90"):
        assert getattr(res_stats, k) == pytest.approx(want[k], rel=1e-9), k


@pytest.mark.parametrize(
    ("baseline", "applied", "offset"),
    [("05.10", None, True), ("03.01", None, False), (None, None, False), ("05.10", True, False)],
)
def test_exact_ndvi_per_block_with_clouds_and_offset_by_baseline(
    tmp_path: Path,
    geoms: dict[str, dict[str, object]],
    baseline: str | None,
    applied: bool | None,
    offset: bool,
) -> None:
    path, arrays = s2_scene(tmp_path, "S2B_T", baseline=baseline, clouds=CLOUDS, offset_applied=applied)
    scene = scene_from_item(read_item(str(path)))
    assert scene.s2 and scene.s2_offset is offset
    results = {r.block_id: r for r in compute_blocks(scene, blocks_of(geoms), min_valid=0.0)}
    assert results["outside"].status == "outside"
    for k in ("a", "cloudy", "edge", "tri"):
        assert results[k].status == "stored"
        check(results[k].stats["ndvi"], naive_block_stats(arrays, geoms[k], offset=offset))
    assert 0.0 < results["cloudy"].valid < 0.5  # 4/7 under the cloud rectangle
    # 60 x 50 pixel centres, a third of them west of the tile: never valid
    assert results["edge"].n_pixels == 3000 and results["edge"].valid < 2 / 3
    assert results["tri"].valid == 1.0 and results["a"].valid < 0.5  # clear sky; mostly under cloud 1
    # NDRE reads the 20 m red-edge band onto the 10 m grid.
    check(results["tri"].stats["ndre"], naive_block_stats(arrays, geoms["tri"], offset=offset, index="ndre"))
    assert {"ndvi", "ndre", "ndwi", "evi"} == set(results["a"].stats)


def test_offset_matters(tmp_path: Path, geoms: dict[str, dict[str, object]]) -> None:
    p_new, _ = s2_scene(tmp_path / "new", "S2_NEW", baseline="04.00", seed=3)
    p_old, _ = s2_scene(tmp_path / "old", "S2_OLD", baseline="02.14", seed=3)
    bl = blocks_of({"a": geoms["a"]})
    new = compute_blocks(scene_from_item(read_item(str(p_new))), bl)[0].stats["ndvi"].mean
    old = compute_blocks(scene_from_item(read_item(str(p_old))), bl)[0].stats["ndvi"].mean
    assert new > old + 0.05  # same DNs: subtracting 1000 raises NDVI of vegetation


def test_low_valid_fraction_is_skipped(tmp_path: Path, geoms: dict[str, dict[str, object]]) -> None:
    path, _ = s2_scene(tmp_path, "S2_CLOUDY", clouds=CLOUDS)
    res = {r.block_id: r for r in compute_blocks(scene_from_item(read_item(str(path))), blocks_of(geoms))}
    assert res["cloudy"].status == "low_valid" and res["a"].status == "low_valid"
    assert res["tri"].status == "stored" and res["outside"].status == "outside"
    assert res["cloudy"].valid is not None and 0 < res["cloudy"].valid < 0.5


def test_block_in_another_utm_zone(tmp_path: Path) -> None:
    """A zone-49 tile reaching past 114 E; the block lies east of 114 E, in zone 50."""
    x0, y0 = 810_000.0, 2_500_000.0
    path, arrays = s2_scene(tmp_path, "S2_Z49", epsg=32649, origin=(x0, y0), clouds=[(100, 150, 200, 260)])
    to_ll = Transformer.from_crs(32649, 4326, always_xy=True)
    lon_w, _ = to_ll.transform(x0 + 3000, y0 - 3500)
    assert lon_w > 114.0
    to_50 = Transformer.from_crs(4326, 32650, always_xy=True)
    to_ll50 = Transformer.from_crs(32650, 4326, always_xy=True)
    cx, cy = to_50.transform(*to_ll.transform(x0 + 4000, y0 - 2500))
    ring = [
        to_ll50.transform(cx + dx, cy + dy) for dx, dy in ((-700, -500), (800, -400), (600, 650), (-500, 600))
    ]
    geom = {"type": "Polygon", "coordinates": [[list(p) for p in [*ring, ring[0]]]]}
    res = compute_blocks(scene_from_item(read_item(str(path))), blocks_of({"z50": geom}), min_valid=0.0)[0]
    want = naive_block_stats(arrays, geom, offset=True, epsg=32649, origin=(x0, y0))
    check(res.stats["ndvi"], want)
    assert want["valid"] < 0.95  # the cloud covers part of it


def test_drone_orthomosaic_indices_and_canopy(tmp_path: Path) -> None:
    """A 5-band float reflectance orthomosaic at 5 cm; band order from the profile; time from the tag."""
    rng = np.random.default_rng(5)
    n = 800  # 40 m x 40 m
    data = rng.uniform(0.02, 0.2, (5, n, n)).astype(np.float32)
    data[4] = rng.uniform(0.1, 0.6, (n, n))  # NIR
    data[:, :50, :50] = -9999.0  # no-data corner
    tif = tmp_path / "flight.tif"
    write_tif(
        tif, data, 0.05, origin=(X0, Y0), nodata=-9999.0, tags={"TIFFTAG_DATETIME": "2026:06:03 10:20:00"}
    )
    item = item_from_geotiff(tif, profile="drone-ms")
    scene = scene_from_item(item)
    assert scene.source == "drone" and scene.when == datetime(2026, 6, 3, 10, 20, tzinfo=UTC)
    geom = utm_polygon([(X0 + 1, Y0 - 1), (X0 + 30, Y0 - 3), (X0 + 25, Y0 - 35), (X0 + 2, Y0 - 30)])
    res = compute_blocks(scene, blocks_of({"d": geom}))[0]
    # naive: pixel centres in the polygon (in UTM: a small block, straight edges either way)
    poly = shape(utm_polygon_utm(geom))
    ndvi_vals: list[float] = []
    inside = 0
    r0, r1 = 0, int(36 / 0.05)
    for r in range(r0, r1):
        for c in range(0, int(31 / 0.05)):
            x, y = X0 + (c + 0.5) * 0.05, Y0 - (r + 0.5) * 0.05
            if not shapely.contains_xy(poly, x, y):
                continue
            inside += 1
            red, nir = float(data[2, r, c]), float(data[4, r, c])
            if red == -9999.0:
                continue
            ndvi_vals.append((nir - red) / (nir + red))
    want = naive_summary(ndvi_vals, inside)
    got = res.stats["ndvi"]
    assert got.n_inside == pytest.approx(inside, abs=inside * 1e-4)  # edge pixels: reprojection rounding
    assert got.mean == pytest.approx(want["mean"], abs=1e-4)
    assert got.valid == pytest.approx(want["valid"], abs=1e-3)
    assert res.canopy == pytest.approx(sum(v >= 0.4 for v in ndvi_vals) / len(ndvi_vals), abs=1e-3)
    assert not math.isnan(res.stats["ndre"].median)


def utm_polygon_utm(geom: dict[str, object]) -> dict[str, object]:
    t = Transformer.from_crs(4326, 32650, always_xy=True)
    ring = [list(t.transform(x, y)) for x, y in geom["coordinates"][0]]  # type: ignore[index]
    return {"type": "Polygon", "coordinates": [ring]}


def test_threads_give_the_same_results_in_block_order(
    tmp_path: Path, geoms: dict[str, dict[str, object]]
) -> None:
    path, _ = s2_scene(tmp_path, "S2_THREADS", clouds=CLOUDS)
    scene = scene_from_item(read_item(str(path)))
    one = compute_blocks(scene, blocks_of(geoms), min_valid=0.0)
    two = compute_blocks(scene, blocks_of(geoms), min_valid=0.0, workers=3)
    assert [r.block_id for r in two] == list(geoms)
    assert [(r.status, r.stats) for r in two] == [(r.status, r.stats) for r in one]
