"""Spectral indices from reflectance arrays, Sentinel-2 L2A scaling and the SCL cloud mask.

Arrays in, arrays out (float64, or float32 when every input is float32: a drone block at 5 cm has
millions of pixels; NaN marks an invalid pixel). Reflectance inputs are unitless (0..1); a zero
denominator gives NaN, never a warning or an infinity.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import ArrayLike, NDArray

from analytics.imagery.config import (
    EVI_CLIP,
    EVI_MIN_DENOMINATOR,
    INDEX_BANDS,
    S2_BOA_ADD_OFFSET,
    S2_NODATA_DN,
    S2_OFFSET_FROM_BASELINE,
    S2_QUANTIFICATION,
    SCL_MASKED,
)

F64 = NDArray[np.float64]


def _f(x: ArrayLike) -> F64:
    a = np.asarray(x)
    if a.dtype == np.float32:
        return a  # kept narrow on purpose (see the module docstring)
    return np.asarray(a, dtype=np.float64)


def normalized_difference(a: ArrayLike, b: ArrayLike) -> F64:
    """(a - b) / (a + b), NaN where the sum is zero or an input is NaN."""
    a, b = np.broadcast_arrays(_f(a), _f(b))
    s = np.asarray(a + b)
    out: F64 = np.asarray(a - b)  # in place from here: a drone block has millions of pixels
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(out, s, out=out)
    _set_nan(out, s == 0)
    return out


def _set_nan(out: F64, where: NDArray[np.bool_]) -> None:
    """NaN where ``where`` is true (skipping the masked assignment when it is nowhere)."""
    if where.any():
        out[where] = np.nan


def ndvi(nir: ArrayLike, red: ArrayLike) -> F64:
    return normalized_difference(nir, red)


def ndre(nir: ArrayLike, rededge: ArrayLike) -> F64:
    return normalized_difference(nir, rededge)


def ndwi(green: ArrayLike, nir: ArrayLike) -> F64:
    """McFeeters' NDWI: (green - nir) / (green + nir)."""
    return normalized_difference(green, nir)


def evi(nir: ArrayLike, red: ArrayLike, blue: ArrayLike) -> F64:
    """2.5 (NIR - red) / (NIR + 6 red - 7.5 blue + 1), clipped to [-1, 1]; NaN near a zero denominator."""
    n, r, b = np.broadcast_arrays(_f(nir), _f(red), _f(blue))
    d = np.asarray(r * 6.0)  # the denominator, built in place in the order n + 6 r - 7.5 b + 1
    np.add(n, d, out=d)
    out: F64 = np.asarray(b * 7.5)
    np.subtract(d, out, out=d)
    np.add(d, 1.0, out=d)
    np.subtract(n, r, out=out)
    np.multiply(out, 2.5, out=out)
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(out, d, out=out)
    np.abs(d, out=d)
    bad = ~(d > EVI_MIN_DENOMINATOR)  # NaN denominators included
    _set_nan(out, bad)
    np.clip(out, *EVI_CLIP, out=out)
    return out


def compute_index(name: str, bands: Mapping[str, ArrayLike]) -> F64:
    """Index ``name`` (ndvi, ndre, ndwi, evi) from reflectances keyed by band common name."""
    need = INDEX_BANDS.get(name)
    if need is None:
        raise ValueError(f"unknown index {name!r}; known: {', '.join(INDEX_BANDS)}")
    missing = [b for b in need if b not in bands]
    if missing:
        raise ValueError(f"index {name} needs bands {', '.join(missing)}")
    if name == "ndvi":
        return ndvi(bands["nir"], bands["red"])
    if name == "ndre":
        return ndre(bands["nir"], bands["rededge"])
    if name == "ndwi":
        return ndwi(bands["green"], bands["nir"])
    return evi(bands["nir"], bands["red"], bands["blue"])


def available_indices(bands: set[str] | frozenset[str]) -> tuple[str, ...]:
    """The indices that can be computed from these band common names."""
    return tuple(i for i, need in INDEX_BANDS.items() if set(need) <= bands)


def s2_offset_applies(processing_baseline: str | float | None, offset_applied: bool = False) -> bool:
    """Whether the BOA_ADD_OFFSET must be added to this Sentinel-2 L2A item's digital numbers.

    From processing baseline 04.00 on the product carries the offset in its DNs, unless the
    provider already harmonised the values (``offset_applied``, e.g. ``earthsearch:boa_offset_applied``).
    A missing baseline means an older product (none before 04.00 carried the property).
    """
    if offset_applied or processing_baseline is None or processing_baseline == "":
        return False
    try:
        baseline = float(processing_baseline)
    except (TypeError, ValueError):
        raise ValueError(
            f"processing baseline {processing_baseline!r} is not a number like '04.00'"
        ) from None
    return baseline >= S2_OFFSET_FROM_BASELINE


def s2_reflectance(dn: ArrayLike, *, offset: bool, nodata: int | None = S2_NODATA_DN) -> F64:
    """Sentinel-2 L2A digital numbers to reflectance: (DN + offset) / 10000, NaN where DN is no-data."""
    d = np.asarray(dn, dtype=np.float64)
    out = (d + (S2_BOA_ADD_OFFSET if offset else 0.0)) / S2_QUANTIFICATION
    if nodata is not None:
        out[d == nodata] = np.nan
    return out


def scaled_reflectance(dn: ArrayLike, *, scale: float, offset: float, nodata: float | None) -> F64:
    """Generic ``dn * scale + offset`` (drone products), NaN where DN equals ``nodata`` or is NaN.

    8- and 16-bit integers and float32 give float32 (exact for the integers); anything else float64.
    """
    raw = np.asarray(dn)
    narrow = raw.dtype == np.float32 or (raw.dtype.kind in "ui" and raw.dtype.itemsize <= 2)
    out: F64 = raw.astype(np.float32 if narrow else np.float64)
    if scale != 1.0:
        np.multiply(out, scale, out=out, casting="same_kind")
    if offset != 0.0:
        np.add(out, offset, out=out, casting="same_kind")
    if nodata is not None and not np.isnan(nodata):
        out[raw == nodata] = np.nan
    return out


def scl_clear(scl: ArrayLike, masked: tuple[int, ...] = SCL_MASKED) -> NDArray[np.bool_]:
    """True where the scene classification allows the pixel (not cloud, shadow, snow, no data...)."""
    return ~np.isin(np.asarray(scl), np.asarray(masked))
