"""GET /farms/{farm}/blocks: a farm's field blocks as GeoJSON; their imagery series through /series;
POST /farms/{farm}/blocks: import a GeoJSON or KML file, all or nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest

from store import sky as store_sky
from store.registry import upsert_node
from tests.api.conftest import Tokens

pytestmark = pytest.mark.integration

SQ = [[108.40, 30.80], [108.401, 30.80], [108.401, 30.801], [108.40, 30.801], [108.40, 30.80]]


def test_blocks_geojson_and_imagery_series(client: httpx.Client, tok: Tokens, db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        geom = {"type": "Polygon", "coordinates": [SQ]}
        row = store_sky.BlockRow(
            "b-1", "North", "orchard_block", geom, 10_300.0, (108.40, 30.80, 108.401, 30.801), {}
        )
        store_sky.upsert_blocks(conn, "farm-a", [row])
        upsert_node(conn, "farm-a", "soil-1", metrics=["soil_vwc"])
        store_sky.place_node(conn, "farm-a", "soil-1", "b-1")
        sid = store_sky.ensure_block_series(conn, "farm-a", "b-1", "satellite", ["ndvi_median"])[
            "ndvi_median"
        ]
        store_sky.upsert_readings(conn, [(sid, datetime(2026, 11, 2, 3, tzinfo=UTC), 0.71)])
    r = client.get("/farms/farm-a/blocks", headers=tok.h("read"))
    assert r.status_code == 200, r.text
    (f,) = r.json()["features"]
    assert f["id"] == "b-1" and f["geometry"]["coordinates"] == [SQ]
    assert f["properties"]["nodes"] == ["soil-1"]
    assert f["properties"]["imagery_nodes"]["satellite"] == "sat-b-1"
    r = client.get("/series", params={"farm": "farm-a", "node": "sat-b-1"}, headers=tok.h("read"))
    assert r.status_code == 200, r.text
    assert [s["metric"] for s in r.json()] == ["ndvi_median"]
    assert client.get("/farms/farm-b/blocks", headers=tok.h("farm_a_reader")).status_code == 403
    assert client.get("/farms/farm-a/overlay", headers=tok.h("read")).status_code == 404
    with psycopg.connect(db_url, autocommit=True) as conn:
        when = datetime(2026, 11, 2, 3, tzinfo=UTC)
        pk = store_sky.upsert_item(
            conn, collection="c", item_id="i", source="satellite", when=when, cloud_cover=None,
            processing_baseline=None, bbox=None, href=None, stac={},
        )  # fmt: skip
        png = b"\x89PNG\r\n\x1a\nfake"
        o = store_sky.Overlay(
            "farm-a", "ndvi", "satellite", pk, when, png, (108.4, 30.8, 108.401, 30.801), -0.2, 1.0
        )
        assert store_sky.save_overlay(conn, o)
        older = store_sky.Overlay(
            "farm-a", "ndvi", "satellite", pk, when - timedelta(days=5), b"old", o.bounds, 0, 1
        )
        assert not store_sky.save_overlay(conn, older)  # an older scene never replaces a newer image
    r = client.get("/farms/farm-a/overlay", params={"index": "ndvi"}, headers=tok.h("read"))
    assert r.status_code == 200 and r.content == png and r.headers["content-type"] == "image/png"
    assert [float(x) for x in r.headers["x-bounds"].split(",")] == [108.4, 30.8, 108.401, 30.801]
    assert client.get("/farms/nope/blocks", headers=tok.h("read")).status_code == 404


def _feature(name: str, ring: list[list[float]]) -> dict[str, object]:
    return {
        "type": "Feature",
        "properties": {"name": name},
        "geometry": {"type": "Polygon", "coordinates": [ring]},
    }


def test_import_blocks_over_http_all_or_nothing(client: httpx.Client, tok: Tokens, db_url: str) -> None:
    sq = [[x + 0.01, y] for x, y in SQ]
    bow = [[108.42, 30.80], [108.421, 30.801], [108.421, 30.80], [108.42, 30.801], [108.42, 30.80]]
    bad = {"type": "FeatureCollection", "features": [_feature("Good", sq), _feature("Knot", bow)]}
    r = client.post("/farms/farm-a/blocks", json=bad, headers=tok.h("operate"))
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["field"] == "body" and "1 bad feature(s), nothing imported" in err["message"]
    assert "feature 2 ('Knot'): self-intersecting" in err["message"]

    def ids() -> list[str]:
        got = client.get("/farms/farm-a/blocks", headers=tok.h("read")).json()
        return [f["id"] for f in got["features"]]

    assert "good" not in ids()  # nothing written
    good = {"type": "FeatureCollection", "features": [_feature("Good", sq)]}
    r = client.post(
        "/farms/farm-a/blocks", json=good, headers=tok.h("operate"), params={"filename": "b.geojson"}
    )
    assert r.status_code == 201, r.text
    (b,) = r.json()
    assert b["block_id"] == "good" and b["kind"] == "field" and 9_000 < b["area_m2"] < 12_000
    assert "good" in ids()
    kml = (
        '<kml xmlns="http://www.opengis.net/kml/2.2"><Placemark><name>Tea</name><Polygon><outerBoundaryIs>'
        "<LinearRing><coordinates>108.43,30.8 108.431,30.8 108.431,30.801 108.43,30.8</coordinates>"
        "</LinearRing></outerBoundaryIs></Polygon></Placemark></kml>"
    )
    r = client.post("/farms/farm-a/blocks", content=kml, headers=tok.h("operate"))
    assert r.status_code == 201 and r.json()[0]["block_id"] == "tea", r.text
    assert client.post("/farms/farm-a/blocks", content=b"", headers=tok.h("operate")).status_code == 400
    r = client.post("/farms/farm-a/blocks", content=b"\xff\xfe{", headers=tok.h("operate"))
    assert r.status_code == 400 and "not UTF-8" in r.json()["error"]["message"]
    far = {"type": "FeatureCollection", "features": [_feature("Far", [[x + 1.0, y] for x, y in SQ])]}
    r = client.post("/farms/farm-a/blocks", json=far, headers=tok.h("operate"))
    assert r.status_code == 400 and "from the farm" in r.json()["error"]["message"], r.text
    assert client.post("/farms/nope/blocks", json=good, headers=tok.h("operate")).status_code == 404
    assert client.post("/farms/farm-a/blocks", json=good, headers=tok.h("read")).status_code == 403
