"""Sensor QC for catalog metrics: feeds the metric catalog's physical range into ``analytics.qc``.

``analytics`` imports numpy only, so the catalog's gross (sensor) range is joined to the QC
thresholds here, in the shared package every service imports.
"""

from __future__ import annotations

from numpy.typing import ArrayLike

from analytics.qc import DEFAULT_THRESHOLDS, QcResult, QcThresholds, run_qc
from kernel.catalog import CATALOG


def thresholds_for(metric: str) -> QcThresholds:
    """The default QC thresholds of a catalog metric (``ValueError`` for an unknown metric)."""
    if metric not in CATALOG:
        raise ValueError(f"unknown metric {metric!r}; known: {', '.join(sorted(CATALOG))}")
    return DEFAULT_THRESHOLDS.get(metric, QcThresholds())


def qc_metric(
    metric: str,
    times: ArrayLike,
    values: ArrayLike,
    *,
    thresholds: QcThresholds | None = None,
    month_lo: ArrayLike | None = None,
    month_hi: ArrayLike | None = None,
    utc_offset_s: float = 0.0,
    causal: bool = False,
) -> QcResult:
    """Run every QC test on series of one catalog metric, gross range from the catalog."""
    th = thresholds if thresholds is not None else thresholds_for(metric)
    m = CATALOG[metric]
    return run_qc(
        times,
        values,
        th,
        sensor_lo=m.lo,
        sensor_hi=m.hi,
        month_lo=month_lo,
        month_hi=month_hi,
        utc_offset_s=utc_offset_s,
        causal=causal,
    )
