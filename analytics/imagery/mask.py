"""Which pixels of a grid have their centre inside a polygon (even-odd rule), in pure numpy.

Rings come in the grid's pixel coordinates (column, row; pixel (r, c) has its centre at
(c + 0.5, r + 0.5)). Each edge toggles the pixels to the right of where it crosses a row's centre
line; a running parity along each row then marks the inside. Holes and multipolygons need no
special case. Thread-safe and independent of GDAL, so blocks can be masked in parallel.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray


def polygon_mask(rings: Sequence[ArrayLike], shape: tuple[int, int]) -> NDArray[np.bool_]:
    """Boolean ``shape`` mask of pixel centres inside the polygon made of ``rings`` (each an (n, 2)
    array of (col, row) vertices; closing the ring is optional)."""
    h, w = shape
    toggles = np.zeros((h, w + 1), dtype=np.uint8)
    for ring in rings:
        v = np.asarray(ring, dtype=np.float64)
        if v.ndim != 2 or v.shape[1] != 2:
            raise ValueError(f"a ring is an (n, 2) array of (col, row) vertices, got shape {v.shape}")
        if len(v) < 3:
            continue
        if not np.array_equal(v[0], v[-1]):
            v = np.vstack([v, v[:1]])
        x0, y0, x1, y1 = v[:-1, 0], v[:-1, 1], v[1:, 0], v[1:, 1]
        lo, hi = np.minimum(y0, y1), np.maximum(y0, y1)
        # rows whose centre line y = r + 0.5 lies in [lo, hi) (half-open: a vertex counts once)
        r_first = np.maximum(np.ceil(lo - 0.5), 0).astype(np.int64)
        r_end = np.minimum(np.ceil(hi - 0.5), h).astype(np.int64)
        for i in np.flatnonzero(r_end > r_first):
            rows = np.arange(r_first[i], r_end[i])
            yc = rows + 0.5
            xc = x0[i] + (yc - y0[i]) * (x1[i] - x0[i]) / (y1[i] - y0[i])
            cols = np.clip(np.floor(xc - 0.5).astype(np.int64) + 1, 0, w)
            np.bitwise_xor.at(toggles, (rows, cols), 1)
    inside: NDArray[np.bool_] = (np.bitwise_xor.accumulate(toggles, axis=1)[:, :w]).astype(bool)
    return inside
