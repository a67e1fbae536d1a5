"""QC of catalog metrics: gross range from the catalog, thresholds for every metric."""

from __future__ import annotations

import numpy as np
import pytest

from analytics import qc
from kernel.catalog import CATALOG
from kernel.qc import qc_metric, thresholds_for

T0 = 1_717_200_000.0


def test_every_catalog_metric_has_thresholds_inside_its_range() -> None:
    assert set(qc.DEFAULT_THRESHOLDS) == set(CATALOG)
    for name, m in CATALOG.items():
        th = thresholds_for(name)
        if th.suspect_lo is not None:
            assert m.lo <= th.suspect_lo <= m.hi, name
        if th.suspect_hi is not None:
            assert m.lo <= th.suspect_hi <= m.hi, name


def test_gross_range_comes_from_catalog() -> None:
    t = T0 + 60.0 * np.arange(4)
    r = qc_metric("do_mgl", t, [5.0, 26.0, 0.2, np.nan])  # catalog 0..25 mg/L, operator 0.5..20
    np.testing.assert_array_equal(r.gross_range, [1, 4, 3, 9])


def test_unknown_metric_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown metric 'air_temp'"):
        qc_metric("air_temp", [T0], [1.0])


def test_climatology_per_farm_month() -> None:
    t = np.array([T0, T0 + 40 * 86_400])  # June then July (UTC+8)
    lo = np.full(12, np.nan)
    hi = np.full(12, np.nan)
    lo[5], hi[5] = 15.0, 35.0  # June only
    r = qc_metric("air_t", t, [40.0, 40.0], month_lo=lo, month_hi=hi, utc_offset_s=8 * 3600)
    np.testing.assert_array_equal(r.climatology, [3, 2])
