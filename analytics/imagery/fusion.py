"""Fusion of sky and ground: which blocks' NDVI falls against their neighbours, and why.

Each block's NDVI (or its change since the previous scene) is scored with a robust z-score against
the farm's *other* blocks on the same date (median and scaled MAD), so season, haze and sun angle,
which move every block together, cancel. A falling block is then read against its soil: dry
(soil moisture low, or the FAO-56 water balance's Ks below 1) -> likely water stress; wet ->
likely disease or damage, worth scouting; no ground data -> an unexplained drop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from analytics.imagery.config import FusionConfig

MAD_SCALE = 1.4826  # scaled MAD estimates the standard deviation of normal data

NONE = 0
WATER_STRESS = 1
DISEASE_OR_DAMAGE = 2
UNEXPLAINED_DROP = 3
FLAG_NAMES = {
    NONE: "none",
    WATER_STRESS: "water_stress",
    DISEASE_OR_DAMAGE: "disease_or_damage",
    UNEXPLAINED_DROP: "ndvi_drop",
}


@dataclass(frozen=True, slots=True)
class FusionResult:
    """Per block (same order as the inputs)."""

    z: NDArray[np.float64]  # robust z-score against the other blocks (NaN: not enough data)
    flag: NDArray[np.int64]  # NONE, WATER_STRESS, DISEASE_OR_DAMAGE, UNEXPLAINED_DROP
    reasons: list[str]

    def names(self) -> list[str]:
        return [FLAG_NAMES[int(f)] for f in self.flag]


def _opt(x: ArrayLike | None, n: int, name: str) -> NDArray[np.float64]:
    if x is None:
        return np.full(n, np.nan)
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 0:
        return np.full(n, float(a))
    if a.shape != (n,):
        raise ValueError(f"{name}: one value per block ({n}) expected, got shape {a.shape}")
    return a


def robust_z_others(x: ArrayLike, *, mad_floor: float = 0.0, min_others: int = 3) -> NDArray[np.float64]:
    """For each element, (x - median of the others) / max(1.4826 MAD of the others, mad_floor).

    NaN elements are ignored as "others" and get NaN; so does an element with fewer than
    ``min_others`` finite others.
    """
    v = np.asarray(x, dtype=np.float64)
    if v.ndim != 1:
        raise ValueError("robust_z_others: a 1-D array of one value per block expected")
    n = v.size
    z = np.full(n, np.nan)
    finite = np.isfinite(v)
    if n == 0:
        return z
    # Leave-one-out: mask the diagonal of an n x n copy (n is a farm's block count: small).
    m = np.broadcast_to(v, (n, n)).copy()
    m[np.eye(n, dtype=bool)] = np.nan
    m[:, ~finite] = np.nan
    counts = np.isfinite(m).sum(axis=1)
    enough = finite & (counts >= max(min_others, 1))
    if not enough.any():
        return z
    rows = m[enough]
    med = np.nanmedian(rows, axis=1)
    mad = MAD_SCALE * np.nanmedian(np.abs(rows - med[:, None]), axis=1)
    scale = np.maximum(mad, mad_floor)
    with np.errstate(divide="ignore", invalid="ignore"):
        zz = (v[enough] - med) / scale
    zz[scale == 0] = np.nan
    z[enough] = zz
    return z


def fuse_blocks(
    ndvi: ArrayLike,
    *,
    ndvi_prev: ArrayLike | None = None,
    soil_vwc: ArrayLike | None = None,
    ks: ArrayLike | None = None,
    config: FusionConfig | None = None,
) -> FusionResult:
    """Flag blocks whose NDVI falls against the farm's other blocks, explained by their soil.

    ``ndvi``: one value per block on one date (e.g. the block's median NDVI; NaN where the scene
    had no valid pixels). ``ndvi_prev``: the same blocks' values on the previous usable date; when
    given, the *change* is scored, so a block that is always sparser than the rest is not flagged.
    ``soil_vwc``: the block's soil moisture (%), NaN where there is no probe; ``ks``: the FAO-56
    water-stress coefficient of the block's water balance, NaN where unknown.
    """
    cfg = config or FusionConfig()
    v = np.asarray(ndvi, dtype=np.float64)
    if v.ndim != 1:
        raise ValueError("ndvi: one value per block (1-D) expected")
    n = v.size
    prev = _opt(ndvi_prev, n, "ndvi_prev")
    vwc = _opt(soil_vwc, n, "soil_vwc")
    k = _opt(ks, n, "ks")
    signal = v - prev if ndvi_prev is not None else v
    z = robust_z_others(signal, mad_floor=cfg.mad_floor, min_others=cfg.min_blocks)
    falling = np.isfinite(z) & (z <= cfg.z_fall)
    dry = (np.isfinite(vwc) & (vwc < cfg.vwc_dry)) | (np.isfinite(k) & (k < cfg.ks_dry))
    wet = ~dry & ((np.isfinite(vwc) & (vwc >= cfg.vwc_wet)) | (np.isfinite(k) & (k >= cfg.ks_dry)))
    flag = np.zeros(n, dtype=np.int64)
    flag[falling & dry] = WATER_STRESS
    flag[falling & wet] = DISEASE_OR_DAMAGE
    flag[falling & ~dry & ~wet] = UNEXPLAINED_DROP
    what = "NDVI change" if ndvi_prev is not None else "NDVI"
    reasons = []
    for i in range(n):
        if not np.isfinite(z[i]):
            reasons.append(f"{what} not comparable (no value or fewer than {cfg.min_blocks} other blocks)")
            continue
        head = f"{what} robust z {z[i]:+.2f} against the farm's other blocks"
        if not falling[i]:
            reasons.append(f"{head}: not falling (threshold {cfg.z_fall:+.1f})")
            continue
        soil = []
        if np.isfinite(vwc[i]):
            soil.append(f"soil moisture {vwc[i]:.1f} %")
        if np.isfinite(k[i]):
            soil.append(f"water-balance Ks {k[i]:.2f}")
        ground = ", ".join(soil)
        if flag[i] == WATER_STRESS:
            reasons.append(f"{head}; soil dry ({ground}): likely water stress")
        elif flag[i] == DISEASE_OR_DAMAGE:
            reasons.append(f"{head}; soil wet ({ground}): likely disease or damage, scout the block")
        elif ground:
            reasons.append(f"{head}; soil neither dry nor wet ({ground}): cause unclear")
        else:
            reasons.append(f"{head}; no soil moisture or water balance for the block")
    return FusionResult(z=z, flag=flag, reasons=reasons)
