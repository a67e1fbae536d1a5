"""Zonal statistics of an index over one block, given the block's pixel mask.

The caller (``sky``) rasterises the polygon into a boolean ``inside`` mask on the index's grid and
passes the clear-sky mask (SCL); everything here is arrays in, numbers out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from analytics.imagery.config import CANOPY_NDVI
from analytics.imagery.select import percentiles


@dataclass(frozen=True, slots=True)
class ZonalStats:
    """Statistics of the valid pixels inside a block (NaN when none is valid)."""

    mean: float
    median: float
    p10: float
    p90: float
    valid: float  # valid pixels / pixels inside the block (0 when the block covers no pixel)
    n_inside: int
    n_valid: int

    def as_dict(self) -> dict[str, float]:
        """The stored statistics keyed like the series suffixes (mean, median, p10, p90, valid)."""
        return {
            "mean": self.mean,
            "median": self.median,
            "p10": self.p10,
            "p90": self.p90,
            "valid": self.valid,
        }


def valid_pixels(
    values: ArrayLike, inside: ArrayLike, clear: ArrayLike | None = None
) -> tuple[NDArray[np.float64], int]:
    """The finite values inside the block and not masked (float32 stays float32), and the count of
    pixels inside it."""
    v = np.asarray(values)
    if v.dtype.kind != "f":
        v = v.astype(np.float64)
    ins = np.asarray(inside, dtype=bool)
    if ins.shape != v.shape:
        raise ValueError(f"mask shape {ins.shape} differs from values shape {v.shape}")
    ok = ins & np.isfinite(v)
    if clear is not None:
        c = np.asarray(clear, dtype=bool)
        if c.shape != v.shape:
            raise ValueError(f"clear-sky mask shape {c.shape} differs from values shape {v.shape}")
        ok &= c
    return v[ok], int(np.count_nonzero(ins))


def zonal_stats(values: ArrayLike, inside: ArrayLike, clear: ArrayLike | None = None) -> ZonalStats:
    """Mean, median, 10th and 90th percentile (linear interpolation) and valid fraction in a block."""
    vals, n_inside = valid_pixels(values, inside, clear)
    return summarize(vals, n_inside)


def summarize(values: ArrayLike, n_inside: int, *, scratch: bool = False) -> ZonalStats:
    """Statistics of a block's candidate pixel values (1-D; NaN ones are not valid) out of
    ``n_inside`` pixels inside it. float32 input stays float32 for the percentiles (millions of
    drone pixels; large float32 arrays through ``analytics.imagery.select``'s radix select, equal to
    ``np.percentile``); the mean is accumulated in float64. ``scratch``: the caller no longer needs
    the values' order, so the percentiles may partition them in place instead of in a copy."""
    v = np.asarray(values).ravel()
    if v.dtype.kind != "f":
        v = v.astype(np.float64)
    finite = np.isfinite(v)
    vals = v if finite.all() else v[finite]
    n = int(vals.size)
    frac = n / n_inside if n_inside else 0.0
    if n == 0:
        nan = float("nan")
        return ZonalStats(nan, nan, nan, nan, frac, n_inside, 0)
    mean = float(vals.mean(dtype=np.float64))
    p10, p50, p90 = percentiles(vals, [10.0, 50.0, 90.0], overwrite=scratch)
    return ZonalStats(mean, float(p50), float(p10), float(p90), frac, n_inside, n)


def canopy_fraction(
    ndvi: ArrayLike, inside: ArrayLike, clear: ArrayLike | None = None, threshold: float = CANOPY_NDVI
) -> float:
    """Share of a block's valid pixels whose NDVI is at or above ``threshold`` (NaN with none valid)."""
    vals, _ = valid_pixels(ndvi, inside, clear)
    if vals.size == 0:
        return float("nan")
    return float(np.count_nonzero(vals >= threshold) / vals.size)
