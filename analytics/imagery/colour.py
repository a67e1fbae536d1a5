"""The colour ramp of index maps: the rendered overlay PNGs (``sky.render``) and the dashboard's
block colours use this one ramp and these display ranges, so a block's fill matches the image."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

# Red-yellow-green ramp (ColorBrewer RdYlGn, 5 classes) over the index's display range.
RAMP = np.array(
    [[215, 25, 28], [253, 174, 97], [255, 255, 191], [166, 217, 106], [26, 150, 65]], dtype=np.float64
)
DISPLAY_RANGE = {"ndvi": (-0.2, 1.0), "ndre": (-0.2, 0.8), "ndwi": (-0.8, 0.6), "evi": (-0.2, 1.0)}


def colormap(values: ArrayLike, vmin: float, vmax: float) -> NDArray[np.uint8]:
    """RGBA (..., 4) of ``values`` on the ramp; NaN transparent."""
    v = np.asarray(values, dtype=np.float64)
    x = np.clip((v - vmin) / (vmax - vmin), 0.0, 1.0)
    pos = np.nan_to_num(x, nan=0.0) * (len(RAMP) - 1)
    lo = np.floor(pos).astype(np.int64).clip(0, len(RAMP) - 2)
    frac = (pos - lo)[..., None]
    rgb = RAMP[lo] * (1 - frac) + RAMP[lo + 1] * frac
    rgba = np.zeros((*v.shape, 4), dtype=np.uint8)
    rgba[..., :3] = np.round(rgb).astype(np.uint8)
    rgba[..., 3] = np.where(np.isfinite(v), 255, 0)
    return rgba


def ramp_stops() -> list[tuple[float, str]]:
    """The ramp as (position 0..1, ``rgb(r,g,b)``) stops, a Plotly colorscale."""
    n = len(RAMP) - 1
    return [(i / n, "rgb({},{},{})".format(*(int(c) for c in RAMP[i]))) for i in range(len(RAMP))]
