"""Imagery index math (pure numpy): spectral indices, Sentinel-2 scaling and cloud mask, zonal
statistics per block, and the sky-ground fusion. Constants: ``analytics.imagery.config``."""

from analytics.imagery.config import (
    CANOPY_METRIC,
    IMAGERY_METRICS,
    INDEX_BANDS,
    INDICES,
    SCL_MASKED,
    STATS,
    FusionConfig,
    metric_name,
)
from analytics.imagery.fusion import FusionResult, fuse_blocks, robust_z_others
from analytics.imagery.indices import (
    available_indices,
    compute_index,
    evi,
    ndre,
    ndvi,
    ndwi,
    s2_offset_applies,
    s2_reflectance,
    scaled_reflectance,
    scl_clear,
)
from analytics.imagery.zonal import ZonalStats, canopy_fraction, summarize, zonal_stats

__all__ = [
    "CANOPY_METRIC",
    "IMAGERY_METRICS",
    "INDEX_BANDS",
    "INDICES",
    "SCL_MASKED",
    "STATS",
    "FusionConfig",
    "FusionResult",
    "ZonalStats",
    "available_indices",
    "canopy_fraction",
    "compute_index",
    "evi",
    "fuse_blocks",
    "metric_name",
    "ndre",
    "ndvi",
    "ndwi",
    "robust_z_others",
    "s2_offset_applies",
    "s2_reflectance",
    "scaled_reflectance",
    "scl_clear",
    "summarize",
    "zonal_stats",
]
