"""Constants of the imagery index math: band needs per index, statistics, masks, fusion thresholds.

The metric names built here (``ndvi_mean`` ... ``canopy_frac``) are the series names of per-block
imagery statistics; ``kernel.catalog`` and the QC defaults take them from this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

#: Spectral indices and the band common names (STAC ``eo:bands`` common_name) each one needs.
INDEX_BANDS: MappingProxyType[str, tuple[str, ...]] = MappingProxyType(
    {
        "ndvi": ("nir", "red"),
        "ndre": ("nir", "rededge"),
        "ndwi": ("green", "nir"),  # McFeeters 1996: open water and wet canopy
        "evi": ("nir", "red", "blue"),
    }
)
INDICES: tuple[str, ...] = tuple(INDEX_BANDS)

#: Per block and date: these statistics of each index, plus the valid-pixel fraction.
STATS: tuple[str, ...] = ("mean", "median", "p10", "p90", "valid")


#: Metric (series) name of one statistic of one index, e.g. ``ndvi_p10``.
def metric_name(index: str, stat: str) -> str:
    if index not in INDEX_BANDS:
        raise ValueError(f"unknown index {index!r}; known: {', '.join(INDICES)}")
    if stat not in STATS:
        raise ValueError(f"unknown statistic {stat!r}; known: {', '.join(STATS)}")
    return f"{index}_{stat}"


CANOPY_METRIC = "canopy_frac"
IMAGERY_METRICS: tuple[str, ...] = (
    *(metric_name(i, s) for i in INDICES for s in STATS),
    CANOPY_METRIC,
)

#: Sentinel-2 L2A scene classification (SCL) classes masked out: no data, saturated or defective,
#: cloud shadow, cloud medium and high probability, thin cirrus, snow or ice.
SCL_MASKED: tuple[int, ...] = (0, 1, 3, 8, 9, 10, 11)

#: Sentinel-2 L2A digital numbers: reflectance = (DN + BOA_ADD_OFFSET) / QUANTIFICATION_VALUE.
S2_QUANTIFICATION = 10_000.0
S2_BOA_ADD_OFFSET = -1000.0  # from processing baseline 04.00 (25 January 2022) on
S2_OFFSET_FROM_BASELINE = 4.0
S2_NODATA_DN = 0

#: EVI is unbounded where its denominator nears zero (bright, blue-heavy pixels): such pixels are
#: invalid, and the rest are clipped to this range as MODIS does for its product.
EVI_MIN_DENOMINATOR = 1e-6
EVI_CLIP = (-1.0, 1.0)


@dataclass(frozen=True, slots=True)
class FusionConfig:
    """Thresholds of :func:`analytics.imagery.fusion.fuse_blocks`."""

    #: robust z-score (against the farm's other blocks) at or below which a block's NDVI "falls"
    z_fall: float = -2.0
    #: floor of the scaled MAD, so blocks that agree closely do not turn noise into flags (NDVI units)
    mad_floor: float = 0.02
    #: fewest other blocks with data needed to judge a block
    min_blocks: int = 3
    #: soil moisture (% VWC) below which the block's soil is dry, at or above ``vwc_wet`` wet
    vwc_dry: float = 20.0
    vwc_wet: float = 30.0
    #: water-stress coefficient Ks (FAO-56, from ``analytics.agro.soil_water_balance``) below
    #: which the water balance says the root zone is dry
    ks_dry: float = 1.0


#: Defaults for the per-block processing in ``sky``.
MIN_VALID_FRACTION = 0.5  # a block-date with fewer valid pixels is skipped, not stored
CANOPY_NDVI = 0.4  # drone: a pixel with NDVI at or above this is canopy
