"""Block files: GeoJSON and KML parsed and validated; every bad feature named with its reason."""

from __future__ import annotations

import json

import pytest
from shapely.geometry import box

from store.blockgeo import BlockImportError, InputError, parse_blocks_file, validate_features

SQ = [[113.30, 23.10], [113.302, 23.10], [113.302, 23.102], [113.30, 23.102], [113.30, 23.10]]
BOWTIE = [[113.31, 23.10], [113.312, 23.102], [113.312, 23.10], [113.31, 23.102], [113.31, 23.10]]


def feat(coords: object, gtype: str = "Polygon", **props: object) -> dict[str, object]:
    return {"type": "Feature", "properties": props, "geometry": {"type": gtype, "coordinates": coords}}


def fc(*features: object, **extra: object) -> str:
    return json.dumps({"type": "FeatureCollection", "features": list(features), **extra})


def test_good_geojson() -> None:
    text = fc(feat([SQ], name="North orchard", kind="orchard", variety="ponkan"), feat([SQ], id="b-2"))
    blocks = validate_features(parse_blocks_file(text, "f.geojson"), "f.geojson")
    assert [b.block_id for b in blocks] == ["north-orchard", "b-2"]
    assert blocks[0].kind == "orchard_block" and blocks[0].props == {"variety": "ponkan"}
    # 0.002 degrees at 23.1 N: about 204.6 m x 221.2 m
    assert blocks[0].area_m2 == pytest.approx(204.7 * 221.2, rel=0.01)


def test_bad_features_are_all_named() -> None:
    projected = [[[500000, 2550000], [500100, 2550000], [500100, 2550100], [500000, 2550000]]]
    text = fc(
        feat([SQ], name="ok"),
        feat([BOWTIE], name="bowtie"),
        feat([113.3, 23.1], "Point", name="well"),
        feat(projected, name="utm"),
        feat([SQ], name="ok", kind="mine"),
        feat([SQ], name="ok"),
    )
    with pytest.raises(BlockImportError) as ei:
        validate_features(parse_blocks_file(text, "f.geojson"), "f.geojson")
    p = ei.value.problems
    assert len(p) == 5
    assert p[0].startswith("feature 2 ('bowtie'): self-intersecting")
    assert p[1] == "feature 3 ('well'): not a polygon (Point)"
    assert p[2].startswith("feature 4 ('utm'): coordinates outside lon/lat range") and "wrong CRS" in p[2]
    assert p[3].startswith("feature 5 ('ok'): kind 'mine'")
    assert p[4] == "feature 6 ('ok'): block id 'ok' repeats feature 1"


def test_declared_crs_other_than_wgs84_is_refused() -> None:
    text = fc(
        feat([SQ], name="a"), crs={"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32649"}}
    )
    with pytest.raises(BlockImportError, match="wrong CRS 'urn:ogc:def:crs:EPSG::32649'"):
        validate_features(parse_blocks_file(text, "f.geojson"), "f.geojson")
    ok = fc(
        feat([SQ], name="a"), crs={"type": "name", "properties": {"name": "urn:ogc:def:crs:OGC:1.3:CRS84"}}
    )
    assert len(validate_features(parse_blocks_file(ok, "f"), "f")) == 1


def test_outside_the_farm_boundary() -> None:
    boundary = box(113.299, 23.099, 113.3015, 23.103)  # cuts the square's east side
    with pytest.raises(BlockImportError, match=r"feature 1 \('a'\): outside the farm boundary"):
        validate_features(parse_blocks_file(fc(feat([SQ], name="a")), "f"), "f", boundary=boundary)
    inside = box(113.29, 23.09, 113.31, 23.11)
    assert validate_features(parse_blocks_file(fc(feat([SQ], name="a")), "f"), "f", boundary=inside)


def test_far_from_the_farm_location() -> None:
    # A farm registered near Hangzhou given a block file from Guangzhou.
    with pytest.raises(BlockImportError, match=r"feature 1 .* km from the farm's location"):
        validate_features(parse_blocks_file(fc(feat([SQ], name="a")), "f"), "f", farm_point=(120.1, 30.3))
    assert validate_features(
        parse_blocks_file(fc(feat([SQ], name="a")), "f"), "f", farm_point=(113.31, 23.11)
    )


KML = """<?xml version="1.0" encoding="UTF-8"?>
<kml xmlns="http://www.opengis.net/kml/2.2"><Document><Folder>
 <Placemark id="pm1"><name>Tea terrace 1</name>
  <ExtendedData><Data name="kind"><value>tea_terrace</value></Data>
   <Data name="id"><value>t1</value></Data></ExtendedData>
  <Polygon><outerBoundaryIs><LinearRing><coordinates>
   113.30,23.10,0 113.302,23.10,0 113.302,23.102,0 113.30,23.102,0 113.30,23.10,0
  </coordinates></LinearRing></outerBoundaryIs>
  <innerBoundaryIs><LinearRing><coordinates>
   113.3005,23.1005 113.3010,23.1005 113.3010,23.1010 113.3005,23.1010 113.3005,23.1005
  </coordinates></LinearRing></innerBoundaryIs></Polygon></Placemark>
 <Placemark><name>Two ponds</name><MultiGeometry>
  <Polygon><outerBoundaryIs><LinearRing><coordinates>
   113.303,23.10 113.304,23.10 113.304,23.101 113.303,23.10
  </coordinates></LinearRing></outerBoundaryIs></Polygon>
  <Polygon><outerBoundaryIs><LinearRing><coordinates>
   113.305,23.10 113.306,23.10 113.306,23.101 113.305,23.10
  </coordinates></LinearRing></outerBoundaryIs></Polygon>
 </MultiGeometry></Placemark>
 {extra}
</Folder></Document></kml>"""


def test_kml_polygons_holes_and_multigeometry() -> None:
    blocks = validate_features(parse_blocks_file(KML.replace("{extra}", ""), "f.kml"), "f.kml")
    assert [(b.block_id, b.kind, b.geometry["type"]) for b in blocks] == [
        ("t1", "tea_terrace", "Polygon"),
        ("two-ponds", "field", "MultiPolygon"),
    ]
    assert len(blocks[0].geometry["coordinates"]) == 2  # outer ring and the hole


def test_kml_bad_placemarks() -> None:
    extra = (
        "<Placemark><name>Gate</name><Point><coordinates>113.3,23.1</coordinates></Point></Placemark>"
        "<Placemark><name>Knot</name><Polygon><outerBoundaryIs><LinearRing><coordinates>"
        "113.31,23.10 113.312,23.102 113.312,23.10 113.31,23.102 113.31,23.10"
        "</coordinates></LinearRing></outerBoundaryIs></Polygon></Placemark>"
        "<Placemark><name>Typo</name><Polygon><outerBoundaryIs><LinearRing><coordinates>"
        "113.31;23.10 113.312,23.102</coordinates></LinearRing></outerBoundaryIs></Polygon></Placemark>"
    )
    with pytest.raises(BlockImportError) as ei:
        validate_features(parse_blocks_file(KML.replace("{extra}", extra), "f.kml"), "f.kml")
    p = ei.value.problems
    assert p[0] == "feature 3 ('Gate'): not a polygon (Point)"
    assert p[1].startswith("feature 4 ('Knot'): self-intersecting")
    assert p[2].startswith("feature 5 ('Typo'): outer boundary: bad coordinate '113.31;23.10'")


def test_unreadable_files() -> None:
    with pytest.raises(InputError, match="not JSON"):
        parse_blocks_file("{oops", "f.geojson")
    with pytest.raises(InputError, match="not KML/XML"):
        parse_blocks_file("<kml><Placemark></kml>", "f.kml")
    with pytest.raises(BlockImportError, match="no features"):
        validate_features(parse_blocks_file(fc(), "f"), "f")
