"""STAC items as scenes: which file and band holds each spectral band, and how to scale it.

A :class:`Scene` is what processing needs from a STAC item (pystac): per band common name
(blue, green, red, rededge, nir) the asset href, band number, scale, offset and no-data; the SCL
band for Sentinel-2 L2A; the source (satellite / drone) and the acquisition time. Plain GeoTIFFs
become items here too (bounds, CRS and datetime from their metadata, band order from a profile).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pystac
import rasterio
from rasterio.errors import RasterioIOError
from rasterio.warp import transform_bounds

from analytics.imagery import s2_offset_applies
from sky.errors import InputError

BAND_NAMES = ("blue", "green", "red", "rededge", "nir")
SCL = "scl"

# Asset keys of Sentinel-2 L2A catalogues (Earth Search v1 names and the band ids) -> common name.
_S2_ASSET_KEYS = MappingProxyType(
    {
        "blue": "blue", "B02": "blue",
        "green": "green", "B03": "green",
        "red": "red", "B04": "red",
        "rededge1": "rededge", "B05": "rededge",
        "nir": "nir", "B08": "nir",
        "scl": SCL, "SCL": SCL,
    }
)  # fmt: skip
_S2_PLATFORMS = ("sentinel-2a", "sentinel-2b", "sentinel-2c", "sentinel-2d")


@dataclass(frozen=True)
class Profile:
    """How to read a plain GeoTIFF: what it is and the common name of each band, in order."""

    source: str
    bands: tuple[str, ...]
    scale: float = 1.0
    offset: float = 0.0


PROFILES: MappingProxyType[str, Profile] = MappingProxyType(
    {
        # Multispectral drone orthomosaics (MicaSense RedEdge / Altum order), reflectance 0..1 as float.
        "drone-ms": Profile("drone", ("blue", "green", "red", "rededge", "nir")),
        # The same as 16-bit integers scaled by 1/65535 (common orthomosaic export).
        "drone-ms-u16": Profile("drone", ("blue", "green", "red", "rededge", "nir"), scale=1 / 65535),
        # DJI Mavic/Phantom multispectral order.
        "dji-ms": Profile("drone", ("green", "red", "rededge", "nir")),
        # A single-file Sentinel-2 L2A stack of digital numbers: B02 B03 B04 B05 B08 SCL.
        "s2-l2a-stack": Profile("satellite", ("blue", "green", "red", "rededge", "nir", SCL)),
    }
)


@dataclass(frozen=True)
class BandRef:
    href: str
    band: int  # 1-based band number in the file
    scale: float = 1.0
    offset: float = 0.0  # added after scaling (reflectance units)
    nodata: float | None = None


@dataclass
class Scene:
    item: pystac.Item
    source: str
    when: datetime
    bands: dict[str, BandRef] = field(default_factory=dict)
    scl: BandRef | None = None
    s2: bool = False
    s2_offset: bool = False  # Sentinel-2: BOA_ADD_OFFSET added to the DNs

    @property
    def collection(self) -> str:
        return self.item.collection_id or ""


def _is_s2(item: pystac.Item) -> bool:
    p = item.properties
    plat = str(p.get("platform", "")).lower()
    return (
        plat in _S2_PLATFORMS
        or str(p.get("constellation", "")).lower() == "sentinel-2"
        or "s2:processing_baseline" in p
        or "sentinel:processing_baseline" in p
    )


def processing_baseline(item: pystac.Item) -> str | None:
    p = item.properties
    v = p.get("s2:processing_baseline", p.get("sentinel:processing_baseline"))
    return None if v is None else str(v)


def _asset_bands(asset: pystac.Asset) -> list[dict[str, Any]]:
    eo = asset.extra_fields.get("eo:bands")
    if isinstance(eo, list):
        return [b if isinstance(b, dict) else {} for b in eo]
    bands = asset.extra_fields.get("bands")  # STAC 1.1 common band objects
    if isinstance(bands, list):
        return [
            {"common_name": b.get("eo:common_name"), "name": b.get("name")} if isinstance(b, dict) else {}
            for b in bands
        ]
    return []


def _raster_band(asset: pystac.Asset, j: int) -> dict[str, Any]:
    rb = asset.extra_fields.get("raster:bands")
    if isinstance(rb, list) and j < len(rb) and isinstance(rb[j], dict):
        return dict(rb[j])
    return {}


def _href(asset: pystac.Asset) -> str:
    return asset.get_absolute_href() or asset.href


def _is_jp2(key: str, asset: pystac.Asset) -> bool:
    return key.endswith("-jp2") or (asset.media_type or "").startswith("image/jp2")


def scene_from_item(item: pystac.Item) -> Scene:
    """What processing needs from an item; ``InputError`` if it has no usable bands or time."""
    when = item.datetime or item.common_metadata.start_datetime
    if when is None:
        raise InputError(f"item {item.id}: no datetime")
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    s2 = _is_s2(item)
    props = item.properties
    source = str(props.get("agri:source") or ("satellite" if s2 else ""))
    if not source:
        gsd = props.get("gsd")
        source = "drone" if isinstance(gsd, int | float) and gsd < 1.0 else "satellite"
    if source not in ("satellite", "drone"):
        raise InputError(f"item {item.id}: agri:source {source!r} must be satellite or drone")
    scene = Scene(item=item, source=source, when=when, s2=s2)
    if s2:
        applied = bool(props.get("earthsearch:boa_offset_applied", False))
        try:
            scene.s2_offset = s2_offset_applies(processing_baseline(item), applied)
        except ValueError as exc:
            raise InputError(f"item {item.id}: {exc}") from None
    refs: dict[str, BandRef] = {}
    # 1. well-known asset keys, 2. eo:bands common names (first band wins, e.g. B05 for rededge).
    for key, asset in item.assets.items():
        name = _S2_ASSET_KEYS.get(key) if s2 else None
        if name and name not in refs and not _is_jp2(key, asset):
            refs[name] = _band_ref(asset, 0, s2)
    for key, asset in item.assets.items():
        if _is_jp2(key, asset):
            continue
        for j, b in enumerate(_asset_bands(asset)):
            cn = str(b.get("common_name") or "").lower()
            if cn == "scl" or str(b.get("name", "")).upper() == "SCL":
                cn = SCL
            if cn in (*BAND_NAMES, SCL) and cn not in refs:
                refs[cn] = _band_ref(asset, j, s2)
    scene.scl = refs.pop(SCL, None)
    scene.bands = refs
    if not {"red", "nir"} <= set(refs):
        raise InputError(
            f"item {item.id}: needs at least red and nir bands (found {', '.join(sorted(refs)) or 'none'});"
            " give assets eo:bands common names or import with --profile/--bands"
        )
    return scene


def _band_ref(asset: pystac.Asset, j: int, s2: bool) -> BandRef:
    rb = _raster_band(asset, j)
    if s2:  # scaling of Sentinel-2 DNs is decided per item (processing baseline), not per asset
        return BandRef(_href(asset), j + 1, nodata=0)
    nodata = rb.get("nodata")
    return BandRef(
        _href(asset),
        j + 1,
        scale=float(rb.get("scale", 1.0)),
        offset=float(rb.get("offset", 0.0)),
        nodata=float(nodata) if isinstance(nodata, int | float) else None,
    )


def read_item(path_or_url: str) -> pystac.Item:
    try:
        return pystac.Item.from_file(path_or_url)
    except (OSError, json.JSONDecodeError, pystac.STACError, KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path_or_url}: not a readable STAC item ({type(exc).__name__}: {exc})") from None


def _tiff_datetime(tags: dict[str, str]) -> datetime | None:
    raw = tags.get("TIFFTAG_DATETIME") or tags.get("ACQUISITIONDATETIME")
    if not raw:
        return None
    for fmt in ("%Y:%m:%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"):
        try:
            return datetime.strptime(raw.strip().rstrip("Z"), fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


def item_from_geotiff(
    path: Path | str,
    *,
    profile: str | None = None,
    bands: tuple[str, ...] | None = None,
    when: datetime | None = None,
    item_id: str | None = None,
    processing_baseline: str | None = None,
) -> pystac.Item:
    """A STAC item for a plain GeoTIFF: footprint and CRS from the file, band order from a profile."""
    href = str(path)
    prof = PROFILES.get(profile or "drone-ms")
    if prof is None:
        raise InputError(f"unknown profile {profile!r}; known: {', '.join(PROFILES)}")
    names = bands or prof.bands
    bad = [b for b in names if b not in (*BAND_NAMES, SCL, "skip")]
    if bad:
        raise InputError(f"band names {bad} unknown; use {', '.join((*BAND_NAMES, SCL, 'skip'))}")
    try:
        with rasterio.open(href) as ds:
            if ds.crs is None:
                raise InputError(f"{href}: GeoTIFF has no CRS (georeference it first)")
            if ds.count != len(names):
                raise InputError(
                    f"{href}: has {ds.count} band(s) but profile/bands give {len(names)} ({', '.join(names)})"
                )
            bbox = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds, densify_pts=21)
            tags = ds.tags()
            res = abs(ds.transform.a)
            crs_code = ds.crs.to_string()
            nodata = ds.nodata
            dtype = ds.dtypes[0]
    except RasterioIOError as exc:
        raise InputError(f"{href}: cannot open as a raster ({exc})") from None
    t = when or _tiff_datetime(tags)
    if t is None:
        raise InputError(f"{href}: no acquisition time in the file's tags; give --datetime")
    w, s, e, n = bbox
    geom = {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}
    props: dict[str, Any] = {
        "agri:source": prof.source,
        "agri:profile": profile or "drone-ms",
        "proj:code": crs_code,
    }
    if prof.source == "drone" or res < 1.0:
        props["gsd"] = res
    if prof.source == "satellite":  # the only satellite profile is a Sentinel-2 L2A stack
        props["constellation"] = "sentinel-2"
    if processing_baseline is not None:
        props["s2:processing_baseline"] = processing_baseline
    item = pystac.Item(
        id=item_id or Path(href).stem, geometry=geom, bbox=[w, s, e, n], datetime=t, properties=props
    )
    eo = [{"name": f"b{i + 1}", "common_name": nm} for i, nm in enumerate(names)]
    rb = [{"data_type": dtype, "scale": prof.scale, "offset": prof.offset, "nodata": nodata} for _ in names]
    item.add_asset(
        "data",
        pystac.Asset(
            href=str(Path(href).resolve()) if "://" not in href else href,
            media_type=pystac.MediaType.GEOTIFF,
            roles=["data"],
            extra_fields={"eo:bands": eo, "raster:bands": rb},
        ),
    )
    return item
