"""Field blocks: parsing GeoJSON and KML features, validating them as WGS 84 polygons, and importing
a farm's blocks all or nothing (`agri block import`, ``POST /farms/{farm}/blocks``: one
implementation, in the store layer so the API may use it).

Parsing and validation are pure functions over text and shapely geometries; KML is parsed with the
standard library's ``xml.etree`` (KML is always WGS 84 lon/lat).
"""

from __future__ import annotations

import json
import logging
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import shapely
from pyproj import Geod
from shapely.geometry import MultiPolygon, Polygon, mapping, shape
from shapely.geometry.base import BaseGeometry
from shapely.validation import explain_validity

from kernel.log import event, get_logger
from store import sky as store_sky
from store.registry import get_farm

log = get_logger("sky")


class InputError(ValueError):
    """A block file, feature or argument is wrong; the message names it and says why."""


class BlockImportError(InputError):
    """Features of a block file were refused; ``problems`` lists one line per bad feature."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(
            f"{source}: {len(problems)} bad feature(s), nothing imported:\n  " + "\n  ".join(problems)
        )


BLOCK_KINDS = ("field", "orchard_block", "tea_terrace", "pond", "barn", "other")
_KIND_ALIASES = {
    "orchard": "orchard_block",
    "tea": "tea_terrace",
    "tea_garden": "tea_terrace",
    "fishpond": "pond",
}
_ID_RE = re.compile(r"^[a-z0-9-]{1,28}$")
_WGS84_CRS = {
    "urn:ogc:def:crs:ogc:1.3:crs84",
    "urn:ogc:def:crs:ogc::crs84",
    "urn:ogc:def:crs:epsg::4326",
    "urn:ogc:def:crs:epsg:6.6:4326",
    "epsg:4326",
    "crs84",
}
_GEOD = Geod(ellps="WGS84")
KML_NS = "http://www.opengis.net/kml/2.2"


@dataclass
class RawFeature:
    """One feature as read from a file, before validation."""

    index: int  # 1-based position in the file
    geometry: dict[str, Any] | None
    props: dict[str, Any] = field(default_factory=dict)
    fid: str | None = None
    problem: str | None = None  # a parse-level problem (e.g. a KML placemark without a polygon)

    def label(self) -> str:
        name = self.props.get("name") or self.fid
        return f"feature {self.index}" + (f" ({name!r})" if name else "")


@dataclass(frozen=True)
class ValidBlock:
    block_id: str
    name: str
    kind: str
    geometry: dict[str, Any]  # GeoJSON, lon/lat
    area_m2: float
    bbox: tuple[float, float, float, float]
    props: dict[str, Any]


def geodesic_area_m2(geom: BaseGeometry) -> float:
    area, _ = _GEOD.geometry_area_perimeter(geom)
    return abs(float(area))


def slug(text: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return s[:28].strip("-")


# -- GeoJSON ---------------------------------------------------------------------------------------


def _crs_name(obj: dict[str, Any]) -> str | None:
    crs = obj.get("crs")
    if not isinstance(crs, dict):
        return None
    props = crs.get("properties")
    name = props.get("name") if isinstance(props, dict) else None
    return str(name) if name is not None else json.dumps(crs)


def parse_geojson(text: str, source: str) -> list[RawFeature]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{source}: not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    if not isinstance(doc, dict) or "type" not in doc:
        raise InputError(f"{source}: not a GeoJSON object (no 'type')")
    file_crs = _crs_name(doc)
    if doc["type"] == "FeatureCollection":
        feats = doc.get("features")
        if not isinstance(feats, list):
            raise InputError(f"{source}: FeatureCollection without a 'features' list")
    elif doc["type"] == "Feature":
        feats = [doc]
    else:
        feats = [{"type": "Feature", "geometry": doc, "properties": {}}]
    out = []
    for i, f in enumerate(feats, start=1):
        if not isinstance(f, dict) or f.get("type") != "Feature":
            out.append(RawFeature(i, None, problem="not a GeoJSON Feature"))
            continue
        props = f.get("properties") or {}
        if not isinstance(props, dict):
            props = {}
        fid = f.get("id")
        raw = RawFeature(i, f.get("geometry"), dict(props), str(fid) if fid is not None else None)
        crs = _crs_name(f) or file_crs
        if crs is not None and crs.lower() not in _WGS84_CRS:
            raw.problem = f"wrong CRS {crs!r}: GeoJSON blocks must be WGS 84 lon/lat (RFC 7946)"
        out.append(raw)
    return out


# -- KML -------------------------------------------------------------------------------------------


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(el: ET.Element, name: str) -> list[ET.Element]:
    return [c for c in el if _local(c.tag) == name]


def _find(el: ET.Element, *path: str) -> ET.Element | None:
    cur: ET.Element | None = el
    for name in path:
        if cur is None:
            return None
        kids = _children(cur, name)
        cur = kids[0] if kids else None
    return cur


def _kml_ring(el: ET.Element | None, where: str) -> list[list[float]]:
    coords = _find(el, "LinearRing", "coordinates") if el is not None else None
    if coords is None or not (coords.text or "").strip():
        raise InputError(f"{where}: no LinearRing coordinates")
    ring = []
    for tup in (coords.text or "").split():
        parts = tup.split(",")
        try:
            ring.append([float(parts[0]), float(parts[1])])
        except (ValueError, IndexError):
            raise InputError(f"{where}: bad coordinate {tup!r} (want lon,lat[,alt])") from None
    return ring


def _kml_polygon(el: ET.Element) -> list[list[list[float]]]:
    outer = _kml_ring(_find(el, "outerBoundaryIs"), "outer boundary")
    inners = [_kml_ring(b, "inner boundary") for b in _children(el, "innerBoundaryIs")]
    return [outer, *inners]


def _kml_geometry(pm: ET.Element) -> dict[str, Any]:
    polys: list[list[list[list[float]]]] = []
    others: list[str] = []

    def walk(el: ET.Element) -> None:
        for c in el:
            name = _local(c.tag)
            if name == "Polygon":
                polys.append(_kml_polygon(c))
            elif name == "MultiGeometry":
                walk(c)
            elif name in ("Point", "LineString", "LinearRing", "Model", "Track"):
                others.append(name)

    walk(pm)
    if not polys:
        kinds = ", ".join(sorted(set(others))) or "no geometry"
        raise InputError(f"not a polygon ({kinds})")
    if others:
        raise InputError(f"mixes a polygon with {', '.join(sorted(set(others)))}")
    if len(polys) == 1:
        return {"type": "Polygon", "coordinates": polys[0]}
    return {"type": "MultiPolygon", "coordinates": polys}


def parse_kml(text: str, source: str) -> list[RawFeature]:
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise InputError(f"{source}: not KML/XML ({exc})") from None
    if _local(root.tag) != "kml":
        raise InputError(f"{source}: root element is <{_local(root.tag)}>, not <kml>")
    out = []
    placemarks = [el for el in root.iter() if _local(el.tag) == "Placemark"]
    for i, pm in enumerate(placemarks, start=1):
        props: dict[str, Any] = {}
        name_el = _find(pm, "name")
        if name_el is not None and (name_el.text or "").strip():
            props["name"] = (name_el.text or "").strip()
        ext = _find(pm, "ExtendedData")
        if ext is not None:
            for d in ext.iter():
                if _local(d.tag) in ("Data", "SimpleData") and d.get("name"):
                    val = _find(d, "value") if _local(d.tag) == "Data" else d
                    props[str(d.get("name"))] = (val.text or "").strip() if val is not None else ""
        raw = RawFeature(i, None, props, pm.get("id"))
        try:
            raw.geometry = _kml_geometry(pm)
        except InputError as exc:
            raw.problem = str(exc)
        out.append(raw)
    return out


def parse_blocks_file(text: str, source: str) -> list[RawFeature]:
    """Features of a GeoJSON or KML file (told apart by content, not by name)."""
    head = text.lstrip()[:200]
    if head.startswith("<"):
        return parse_kml(text, source)
    return parse_geojson(text, source)


# -- validation ------------------------------------------------------------------------------------


def _check_lonlat(geom: BaseGeometry) -> str | None:
    w, s, e, n = geom.bounds
    if w < -180 or e > 180 or s < -90 or n > 90:
        return (
            f"coordinates outside lon/lat range (bounds {w:.1f}, {s:.1f}, {e:.1f}, {n:.1f}): "
            "wrong CRS? blocks must be WGS 84 lon/lat"
        )
    return None


def validate_feature(
    raw: RawFeature,
    *,
    boundary: BaseGeometry | None = None,
    farm_point: tuple[float, float] | None = None,
    max_farm_distance_km: float = 50.0,
) -> ValidBlock:
    """One feature as a block, or ``InputError`` with the reason (without the feature's label)."""
    if raw.problem:
        raise InputError(raw.problem)
    if not isinstance(raw.geometry, dict):
        raise InputError("no geometry")
    gtype = raw.geometry.get("type")
    if gtype not in ("Polygon", "MultiPolygon"):
        raise InputError(f"not a polygon ({gtype})")
    try:
        geom = shape(raw.geometry)
    except (ValueError, TypeError, AttributeError, IndexError, shapely.errors.GEOSException) as exc:
        raise InputError(f"malformed {gtype} coordinates ({exc})") from None
    if geom.is_empty:
        raise InputError("empty polygon")
    bad_crs = _check_lonlat(geom)
    if bad_crs:
        raise InputError(bad_crs)
    if not geom.is_valid:
        why = explain_validity(geom)
        if "Self-intersection" in why or "Ring Self-intersection" in why:
            raise InputError(f"self-intersecting polygon ({why})")
        raise InputError(f"invalid polygon ({why})")
    assert isinstance(geom, Polygon | MultiPolygon)
    area = geodesic_area_m2(geom)
    if area < 1.0:
        raise InputError(f"degenerate polygon (area {area:.3f} m²)")
    if boundary is not None and not boundary.buffer(1e-7).covers(geom):
        outside = geodesic_area_m2(geom.difference(boundary))
        raise InputError(f"outside the farm boundary ({outside:,.0f} m² of {area:,.0f} m² outside)")
    if boundary is None and farm_point is not None:
        c = geom.centroid
        _, _, dist = _GEOD.inv(farm_point[0], farm_point[1], c.x, c.y)
        if dist / 1000 > max_farm_distance_km:
            raise InputError(
                f"{dist / 1000:,.0f} km from the farm's location (more than {max_farm_distance_km:.0f} km):"
                " lon/lat swapped or another farm's block?"
            )
    props = dict(raw.props)
    name = str(props.pop("name", "") or "").strip()
    bid_raw = (
        props.pop("block_id", None) or props.pop("id", None) or raw.fid or (slug(name) if name else None)
    )
    block_id = str(bid_raw).strip().lower() if bid_raw else f"b{raw.index}"
    if not _ID_RE.match(block_id):
        slugged = slug(block_id)
        if not slugged:
            raise InputError(f"block id {block_id!r} must match [a-z0-9-]{{1,28}}")
        block_id = slugged
    kind = str(props.pop("kind", "") or "field").strip().lower()
    kind = _KIND_ALIASES.get(kind, kind)
    if kind not in BLOCK_KINDS:
        raise InputError(f"kind {kind!r} must be one of {', '.join(BLOCK_KINDS)}")
    return ValidBlock(
        block_id=block_id,
        name=name or block_id,
        kind=kind,
        geometry=dict(mapping(geom)),
        area_m2=area,
        bbox=tuple(float(x) for x in geom.bounds),  # type: ignore[arg-type]
        props={k: v for k, v in props.items() if isinstance(v, str | int | float | bool) or v is None},
    )


def validate_features(
    features: list[RawFeature],
    source: str,
    *,
    boundary: BaseGeometry | None = None,
    farm_point: tuple[float, float] | None = None,
) -> list[ValidBlock]:
    """Every feature as a block, or :class:`BlockImportError` listing every bad one."""
    problems: list[str] = []
    blocks: list[ValidBlock] = []
    seen: dict[str, int] = {}
    if not features:
        raise BlockImportError(source, ["the file has no features"])
    for raw in features:
        try:
            b = validate_feature(raw, boundary=boundary, farm_point=farm_point)
        except InputError as exc:
            problems.append(f"{raw.label()}: {exc}")
            continue
        if b.block_id in seen:
            problems.append(f"{raw.label()}: block id {b.block_id!r} repeats feature {seen[b.block_id]}")
            continue
        seen[b.block_id] = raw.index
        blocks.append(b)
    if problems:
        raise BlockImportError(source, problems)
    return blocks


def geometry_of(geojson: dict[str, Any]) -> BaseGeometry:
    return shape(geojson)


def read_blocks(
    text: str,
    source: str,
    *,
    boundary: dict[str, Any] | None = None,
    farm_point: tuple[float, float] | None = None,
) -> list[ValidBlock]:
    """Parse and validate a block file's text (GeoJSON or KML)."""
    try:
        bound = shape(boundary) if boundary else None
    except (ValueError, TypeError, AttributeError) as exc:
        raise InputError(f"the farm's stored boundary is not a GeoJSON polygon ({exc})") from None
    return validate_features(parse_blocks_file(text, source), source, boundary=bound, farm_point=farm_point)


def import_blocks_text(
    conn: psycopg.Connection[Any], farm_id: str, text: str, source: str
) -> list[ValidBlock]:
    """Validate every feature, then write all blocks in one transaction (nothing on any error)."""
    farm = get_farm(conn, farm_id)
    if farm is None:
        raise InputError(f"farm {farm_id!r} is not registered")
    _, boundary = store_sky.farm_boundary(conn, farm_id)
    point = (farm.lon, farm.lat) if farm.lon is not None and farm.lat is not None else None
    blocks = read_blocks(text, source, boundary=boundary, farm_point=point)
    with conn.transaction():
        store_sky.upsert_blocks(
            conn,
            farm_id,
            [
                store_sky.BlockRow(b.block_id, b.name, b.kind, b.geometry, b.area_m2, b.bbox, b.props)
                for b in blocks
            ],
        )
    event(log, "blocks_imported", farm=farm_id, source=source, blocks=len(blocks), level=logging.INFO)
    return blocks


def import_blocks_file(conn: psycopg.Connection[Any], farm_id: str, path: Path) -> list[ValidBlock]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read ({exc})") from None
    return import_blocks_text(conn, farm_id, text, str(path))
