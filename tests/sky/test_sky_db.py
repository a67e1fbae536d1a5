"""Blocks, scene import, series, render and fusion against a real TimescaleDB, through the CLI."""

from __future__ import annotations

import json
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg
import pytest
import rasterio
from rasterio.errors import NotGeoreferencedWarning
from typer.testing import CliRunner

from agri.cli.main import app
from sky.fusion import farm_fusion
from store import registry
from store import sky as store_sky
from tests.sky.synth import ORIGIN, naive_block_stats, s2_scene, utm_polygon, write_tif

pytestmark = pytest.mark.integration
runner = CliRunner()
X0, Y0 = ORIGIN
FARM = "citrus-1"
BLOCKS = {
    "tri": [(X0 + 4000, Y0 - 4000), (X0 + 5500, Y0 - 4100), (X0 + 4300, Y0 - 5800)],
    "cloudy": [
        (X0 + 2800, Y0 - 3050),
        (X0 + 4200, Y0 - 3050),
        (X0 + 4200, Y0 - 3900),
        (X0 + 2800, Y0 - 3900),
    ],
    "d": [(X0 + 1, Y0 - 1), (X0 + 30, Y0 - 3), (X0 + 25, Y0 - 35), (X0 + 2, Y0 - 30)],
}


def geojson(features: dict[str, list[tuple[float, float]]], bad: bool = False) -> str:
    feats = [
        {"type": "Feature", "id": k, "properties": {"name": f"Block {k}", "kind": "orchard"},
         "geometry": utm_polygon(v)}
        for k, v in features.items()
    ]  # fmt: skip
    if bad:
        g = utm_polygon([(X0 + 10, Y0 - 10), (X0 + 90, Y0 - 90), (X0 + 90, Y0 - 10), (X0 + 10, Y0 - 90)])
        feats.append({"type": "Feature", "properties": {"name": "Knot"}, "geometry": g})
    return json.dumps({"type": "FeatureCollection", "features": feats})


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> dict[str, str]:
    return {"AGRI_DATABASE_URL": db_url, "AGRI_HOME": str(tmp_path / "home"), "AGRI_MODE": "test"}


def test_blocks_scene_series_render(
    db: psycopg.Connection[tuple[object, ...]], env: dict[str, str], tmp_path: Path
) -> None:
    registry.upsert_farm(db, FARM, "Citrus one", "orchard", lat=22.58, lon=117.99)
    registry.upsert_node(db, FARM, "soil-1", metrics=["soil_vwc"])

    bad = tmp_path / "bad.geojson"
    bad.write_text(geojson(BLOCKS, bad=True))
    r = runner.invoke(app, ["block", "import", str(bad), "--farm", FARM], env=env)
    assert r.exit_code == 1
    assert "feature 4 ('Knot'): self-intersecting" in r.output and "nothing imported" in r.output
    assert store_sky.list_blocks(db, FARM) == []  # all or nothing

    good = tmp_path / "blocks.geojson"
    good.write_text(geojson(BLOCKS))
    r = runner.invoke(app, ["block", "import", str(good), "--farm", FARM], env=env)
    assert r.exit_code == 0, r.output
    assert [b.block_id for b in store_sky.list_blocks(db, FARM)] == ["cloudy", "d", "tri"]
    r = runner.invoke(app, ["block", "place", "soil-1", "tri", "--farm", FARM], env=env)
    assert r.exit_code == 0, r.output
    assert store_sky.block_nodes(db, FARM, "tri") == ["soil-1"]
    r = runner.invoke(app, ["block", "place", "soil-1", "nope", "--farm", FARM], env=env)
    assert r.exit_code == 1 and "has no block 'nope'" in r.output

    item, arrays = s2_scene(tmp_path / "scenes", "S2B_50QRK_20260601", clouds=[(150, 200, 100, 180)])
    for _ in range(2):  # importing twice replaces, never duplicates
        r = runner.invoke(app, ["sky", "import", str(item), "--farm", FARM], env=env)
        assert r.exit_code == 0, r.output
    assert "1 below the valid fraction" in " ".join(r.output.split())
    series = store_sky.block_series(db, FARM, "tri", "ndvi_mean")
    want = naive_block_stats(arrays, utm_polygon(BLOCKS["tri"]), offset=True)
    assert len(series) == 1 and series[0][0] == datetime(2026, 6, 1, 3, tzinfo=UTC)
    assert series[0][1] == pytest.approx(want["mean"], rel=1e-9)
    assert store_sky.block_series(db, FARM, "tri", "ndvi_p90")[0][1] == pytest.approx(want["p90"], rel=1e-9)
    assert store_sky.block_series(db, FARM, "cloudy", "ndvi_mean") == []  # too cloudy: skipped
    runs = db.execute("SELECT block_id, status FROM sky_block_runs ORDER BY block_id").fetchall()
    assert runs == [("cloudy", "low_valid"), ("d", "stored"), ("tri", "stored")]
    # The statistics are ordinary series of the block's satellite pseudo node.
    rows = db.execute(
        "SELECT n.node_id, n.source, n.block_id, count(*) FROM series s JOIN nodes n ON n.id = s.node_id"
        " JOIN readings r ON r.series_id = s.id WHERE n.farm_id = %s GROUP BY 1, 2, 3 ORDER BY 1",
        (FARM,),
    ).fetchall()
    assert rows == [("sat-d", "satellite", "d", 20), ("sat-tri", "satellite", "tri", 20)]
    r = runner.invoke(app, ["sky", "series", "--farm", FARM, "--block", "tri", "--stat", "median"], env=env)
    assert r.exit_code == 0 and r.output.splitlines()[1].startswith("2026-06-01T03:00:00+00:00,0.")

    # A drone flight over block d: float reflectance, 5 cm, band order from the profile.
    rng = np.random.default_rng(2)
    ortho = rng.uniform(0.02, 0.15, (5, 800, 800)).astype(np.float32)
    ortho[4] = rng.uniform(0.2, 0.6, (800, 800))
    tif = tmp_path / "flight-0603.tif"
    write_tif(tif, ortho, 0.05, nodata=-9999.0)
    r = runner.invoke(
        app,
        ["sky", "import", str(tif), "--profile", "drone-ms", "--datetime", "2026-06-03T02:00:00Z"],
        env=env,
    )
    assert r.exit_code == 0, r.output
    canopy = store_sky.block_series(db, FARM, "d", "canopy_frac", source="drone")
    assert len(canopy) == 1 and 0.5 < canopy[0][1] <= 1.0
    assert (Path(env["AGRI_HOME"]) / "sky" / "items" / "flight-0603.json").exists()

    # The import rendered the farm's overlay; the newer drone flight replaced nothing of the
    # satellite one (each source keeps its own), and an older scene would not replace either.
    sat = store_sky.get_overlay(db, FARM, "ndvi", "satellite")
    drone = store_sky.get_overlay(db, FARM, "ndvi", "drone")
    assert sat is not None and sat.png.startswith(b"\x89PNG") and sat.acquired_at == series[0][0]
    assert drone is not None and store_sky.get_overlay(db, FARM, "ndvi") == drone  # newest of both
    w0, s0, e0, n0 = sat.bounds
    assert w0 < e0 and s0 < n0

    out = tmp_path / "ndvi.png"
    r = runner.invoke(
        app, ["sky", "render", "--farm", FARM, "--source", "satellite", "--out", str(out)], env=env
    )
    assert r.exit_code == 0, r.output
    meta = json.loads(r.output)
    b = meta["bounds"]
    boxes = np.array([x.bbox for x in store_sky.list_blocks(db, FARM)])
    w, s, e, n = (*boxes[:, :2].min(axis=0), *boxes[:, 2:].max(axis=0))
    assert b["west"] <= w and b["south"] <= s and b["east"] >= e and b["north"] >= n
    assert b["east"] - b["west"] < (e - w) + 0.001  # about the blocks' extent, not the tile's
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(out) as png:
            assert png.count == 4 and png.width == meta["size"][0]
            alpha = png.read(4)
    assert 0 < (alpha == 255).mean() < 1  # blocks opaque, the rest (and clouds) transparent


def test_farm_fusion_reads_block_soil(db: psycopg.Connection[tuple[object, ...]]) -> None:
    registry.upsert_farm(db, "tea-1", "Tea one", "tea_garden")
    sq = [[113.30, 23.10], [113.301, 23.10], [113.301, 23.101], [113.30, 23.101], [113.30, 23.10]]
    rows = []
    for i in range(6):
        ring = [[x + 0.002 * i, y] for x, y in sq]
        geom = {"type": "Polygon", "coordinates": [ring]}
        rows.append(store_sky.BlockRow(f"t{i}", f"T{i}", "tea_terrace", geom, 10_000.0, (0, 0, 0, 0), {}))
    store_sky.upsert_blocks(db, "tea-1", rows)
    t1 = datetime(2026, 5, 20, 3, tzinfo=UTC)
    t2 = t1 + timedelta(days=5)
    before = [0.70, 0.71, 0.69, 0.72, 0.70, 0.71]
    after = [0.62, 0.40, 0.61, 0.63, 0.38, 0.62]  # haze lowers all by ~0.08; t1 and t4 fall far more
    readings = []
    for i in range(6):
        sid = store_sky.ensure_block_series(db, "tea-1", f"t{i}", "satellite", ["ndvi_median"])["ndvi_median"]
        readings += [(sid, t1, before[i]), (sid, t2, after[i])]
    for blk, vwc in (("t1", 11.0), ("t4", 41.0), ("t2", 28.0)):
        node = registry.upsert_node(db, "tea-1", f"probe-{blk}", metrics=["soil_vwc"])
        store_sky.place_node(db, "tea-1", node.node_id, blk)
        sid = registry.ensure_series(db, node.pk, "soil_vwc")
        readings += [(sid, t2 - timedelta(hours=h), vwc) for h in (2, 10, 30)]
    store_sky.upsert_readings(db, readings)
    flags = {f.block_id: f for f in farm_fusion(db, "tea-1")}
    assert flags["t1"].flag == "water_stress" and flags["t1"].soil_vwc == pytest.approx(11.0)
    assert flags["t4"].flag == "disease_or_damage"
    assert {flags[b].flag for b in ("t0", "t2", "t3", "t5")} == {"none"}
    assert "likely water stress" in flags["t1"].reason
