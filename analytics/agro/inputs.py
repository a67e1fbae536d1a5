"""Input normalisation shared by the agronomic indices: broadcast, missing values, unit ranges."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from analytics.agro.config import RANGES

F64 = NDArray[np.float64]


def arr(name: str, x: ArrayLike | None) -> F64:
    """``x`` as float64; ``None`` becomes a NaN scalar (missing)."""
    if x is None:
        return np.array(np.nan)
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: not numeric ({exc})") from None
    return a


def check_range(name: str, a: F64, key: str | None = None, *, allow_nan: bool = True) -> None:
    """Raise ``ValueError`` when a finite value lies outside the plausible range of ``key``."""
    lo, hi = RANGES[key or name]
    if np.isinf(a).any():
        raise ValueError(f"{name}: infinite value")
    if not allow_nan and np.isnan(a).any():
        raise ValueError(f"{name}: required, but has missing (NaN) values")
    finite = a[np.isfinite(a)]
    if finite.size and (finite.min() < lo or finite.max() > hi):
        bad = finite[(finite < lo) | (finite > hi)][0]
        raise ValueError(f"{name}: {bad:g} outside the plausible range {lo:g}..{hi:g} (wrong unit?)")


def broadcast(**arrays: F64) -> dict[str, F64]:
    """Broadcast named arrays together, with a clear error naming their shapes."""
    try:
        out = np.broadcast_arrays(*arrays.values())
    except ValueError:
        shapes = ", ".join(f"{k}{np.shape(v)}" for k, v in arrays.items())
        raise ValueError(f"input shapes do not broadcast together: {shapes}") from None
    return {k: np.array(v, dtype=np.float64) for k, v in zip(arrays, out, strict=True)}


def check_doy(doy: F64) -> None:
    check_range("doy", doy, allow_nan=False)
    if (doy != np.round(doy)).any():
        raise ValueError("doy: day of the year must be a whole number 1..366")
