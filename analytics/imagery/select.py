"""Exact percentiles of millions of float32 pixels without partitioning the whole array.

``percentiles(v, qs)`` returns exactly what ``np.percentile(v, qs)`` (method "linear") returns, bit
for bit: the same order statistics and numpy's own interpolation formula. For large float32 arrays
it finds those order statistics by a radix select on the float's bit pattern: one histogram of the
top 20 bits (sign, exponent and 11 mantissa bits), then only the few
bins that hold a wanted rank are extracted and partitioned (for an NDVI block, some tens of
thousands of values instead of millions). Less than half of ``np.percentile``'s time on a 4 M pixel
drone block. Smaller or other arrays go to ``np.percentile`` itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

#: Below this many values ``np.percentile`` is as fast (the histogram has 2^20 bins).
RADIX_MIN = 1 << 18
#: Histogram on the top 20 bits of the float: sign, exponent and 11 mantissa bits (bins 1/2048 of a
#: value wide, so the bins holding the wanted ranks are small even for a narrow NDVI distribution).
KEY_BITS = 20
_HALF = 1 << (KEY_BITS - 1)
#: Bit patterns in value order: negatives (sign bit set) from the largest pattern down, then the
#: positives upwards (-0.0 just before +0.0: equal values, either may stand at a rank).
_ORDER = np.concatenate([np.arange(2 * _HALF - 1, _HALF - 1, -1), np.arange(0, _HALF)]).astype(np.int32)


def percentiles(values: NDArray[Any], qs: Sequence[float], *, overwrite: bool = False) -> NDArray[np.float64]:
    """``np.percentile(values, qs)`` (linear interpolation) of finite 1-D ``values``; ``overwrite``
    lets the small-array path partition ``values`` in place (the radix path never reorders them)."""
    v = np.asarray(values).ravel()
    if v.dtype != np.float32 or v.size < RADIX_MIN or not v.flags.c_contiguous:
        out: NDArray[np.float64] = np.asarray(np.percentile(v, list(qs), overwrite_input=overwrite))
        return out
    if not all(0.0 <= q <= 100.0 for q in qs):
        raise ValueError(f"percentiles must be within 0..100, not {list(qs)}")
    n = int(v.size)
    # numpy's linear method, step by step (numpy/lib/_function_base_impl.py: _quantile, _lerp)
    q = np.true_divide(np.asarray(qs, dtype=np.float64), 100)
    virtual = (n - 1) * q
    prev = np.floor(virtual)
    nxt = prev + 1
    above = virtual >= n - 1
    prev[above] = n - 1
    nxt[above] = n - 1
    prev_i = prev.astype(np.intp)
    next_i = nxt.astype(np.intp)
    gamma = np.asarray(virtual - prev_i, dtype=np.float64)
    ranks = np.unique(np.concatenate([prev_i, next_i]))
    got = dict(zip(ranks.tolist(), order_statistics(v, ranks).tolist(), strict=True))
    a = np.array([got[int(i)] for i in prev_i], dtype=np.float32)
    b = np.array([got[int(i)] for i in next_i], dtype=np.float32)
    diff = b - a  # float32, as numpy subtracts the two gathered float32 values
    res = np.add(a, diff * gamma)
    np.subtract(b, diff * (1 - gamma), out=res, where=gamma >= 0.5, casting="unsafe", dtype=np.float64)
    return res


def order_statistics(v: NDArray[np.float32], ranks: NDArray[np.intp]) -> NDArray[np.float32]:
    """The values at 0-based ``ranks`` (sorted ascending) of the sorted finite float32 array ``v``."""
    key = v.view(np.uint32) >> (32 - KEY_BITS)
    raw = np.bincount(key, minlength=1 << KEY_BITS)
    ends = np.cumsum(raw[_ORDER])  # ends[j]: values in the bins up to _ORDER[j]
    out = np.empty(len(ranks), dtype=np.float32)
    pos = np.searchsorted(ends, ranks, side="right")  # the bin holding each rank
    for j in np.unique(pos):
        want = np.flatnonzero(pos == j)
        sub = v[key == _ORDER[j]]
        kth = ranks[want] - (int(ends[j]) - int(sub.size))
        sub.partition(kth)
        out[want] = sub[kth]
    return out
