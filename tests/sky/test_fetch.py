"""`agri sky fetch` against a local STAC API: the search request, the cloud filter, and windowed
reads of the remote GeoTIFFs (only the bytes covering the blocks)."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from agri.cli.main import app
from store import registry
from store import sky as store_sky
from tests.sky.stac_server import serve
from tests.sky.synth import ORIGIN, naive_block_stats, s2_scene, utm_polygon

pytestmark = pytest.mark.integration
runner = CliRunner()
X0, Y0 = ORIGIN
FARM = "tea-9"
BLOCKS = {
    "t1": [(X0 + 4000, Y0 - 4000), (X0 + 5500, Y0 - 4100), (X0 + 4300, Y0 - 5800)],
    "t2": [(X0 + 8000, Y0 - 9000), (X0 + 8600, Y0 - 9000), (X0 + 8600, Y0 - 9500), (X0 + 8000, Y0 - 9500)],
}
SIZE = 2048  # 20 km tile of 10 m pixels: 8 MB per 10 m band


def test_fetch_searches_and_reads_only_windows(
    db: psycopg.Connection[tuple[object, ...]], db_url: str, tmp_path: Path
) -> None:
    registry.upsert_farm(db, FARM, "Tea nine", "tea_garden")
    feats = [
        {"type": "Feature", "id": k, "properties": {}, "geometry": utm_polygon(v)} for k, v in BLOCKS.items()
    ]
    (tmp_path / "b.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    env = {"AGRI_DATABASE_URL": db_url, "AGRI_HOME": str(tmp_path / "home"), "AGRI_MODE": "test"}
    assert (
        runner.invoke(
            app, ["block", "import", str(tmp_path / "b.geojson"), "--farm", FARM], env=env
        ).exit_code
        == 0
    )

    files = tmp_path / "cogs"
    scenes = {}
    for item_id, when, cloud in (
        ("S2A_A", "2026-06-01T03:00:00Z", 12.0),
        ("S2A_B", "2026-06-06T03:00:00Z", 80.0),  # too cloudy for --max-cloud 30
        ("S2A_C", "2026-07-20T03:00:00Z", 5.0),  # outside the dates
    ):
        path, arrays = s2_scene(files, item_id, size10=SIZE, when=when, seed=len(scenes))
        scenes[item_id] = (path, arrays, cloud)
    with serve(files) as api:
        for item_id, (path, _, cloud) in scenes.items():
            item = json.loads(path.read_text())
            item["properties"]["eo:cloud_cover"] = cloud
            for a in item["assets"].values():
                a["href"] = f"{api.url}/files/{item_id}/{a['href'].removeprefix('./')}"
            api.items.append(item)
        args = ["sky", "fetch", "--farm", FARM, "--from", "2026-05-25", "--to", "2026-06-30",
                "--max-cloud", "30", "--stac-url", api.url]  # fmt: skip
        r = runner.invoke(app, args, env=env)
        assert r.exit_code == 0, r.output
        assert "found 1 scene(s), imported 1" in r.output
        body = api.searches[0]
        assert body["collections"] == ["sentinel-2-l2a"]
        assert body["query"] == {"eo:cloud_cover": {"lte": 30.0}}
        assert (
            body["datetime"].startswith("2026-05-25T00:00:00") and "/2026-06-30T23:59:59" in body["datetime"]
        )
        w, s, e, n = body["bbox"]
        lons = [p[0] for f in feats for p in f["geometry"]["coordinates"][0]]
        lats = [p[1] for f in feats for p in f["geometry"]["coordinates"][0]]
        assert (w, s, e, n) == pytest.approx((min(lons), min(lats), max(lons), max(lats)))
        # Only windows: far less than the files were transferred.
        for band in ("B04", "B08"):
            full = (files / "S2A_A" / f"{band}.tif").stat().st_size
            got = api.served[f"/files/S2A_A/{band}.tif"]
            assert 0 < got < full / 4, (band, got, full)
        assert not any(k.startswith("/files/S2A_B") for k in api.served)

    # The item is recorded with local clips, and the statistics equal those of the full scene.
    rows = store_sky.list_items(db)
    assert [r["item_id"] for r in rows] == ["S2A_A"]
    red = rows[0]["stac"]["assets"]["red"]
    assert red["agri:origin"].endswith("/files/S2A_A/B04.tif") and Path(red["href"]).exists()
    _, arrays, _ = scenes["S2A_A"]
    for k, v in BLOCKS.items():
        want = naive_block_stats(arrays, utm_polygon(v), offset=True)
        got = store_sky.block_series(db, FARM, k, "ndvi_median")
        assert got[0][1] == pytest.approx(want["median"], rel=1e-9)


def test_fetch_reports_an_unreachable_api(
    db_url: str, tmp_path: Path, db: psycopg.Connection[tuple[object, ...]]
) -> None:
    registry.upsert_farm(db, "f-2", "F2", "orchard")
    row = store_sky.BlockRow(
        "a", "A", "field", utm_polygon(BLOCKS["t1"]), 1e4, (117.9, 22.5, 118.1, 22.7), {}
    )
    store_sky.upsert_blocks(db, "f-2", [row])
    env = {"AGRI_DATABASE_URL": db_url, "AGRI_HOME": str(tmp_path), "AGRI_MODE": "test"}
    with serve(tmp_path) as api:
        url = api.url
    args = ["sky", "fetch", "--farm", "f-2", "--from", "2026-06-01", "--to", "2026-06-02", "--stac-url", url]
    r = runner.invoke(app, args, env=env)
    out = " ".join(r.output.split())
    assert r.exit_code == 1 and f"STAC search at {url} failed" in out and "Connection refused" in out
