"""Flags and every threshold of the sensor QC tests, in one place.

Flag values follow IOOS QARTOD (pass=1, not evaluated=2, suspect=3, fail=4, missing=9).
The per-metric thresholds below are starting values for farm sensors sampled every 1-15 min;
a deployment overrides them per series (``dataclasses.replace``). Gross (sensor) ranges are not
here: they come from the metric catalog (``kernel.catalog``), passed in by ``kernel.qc``, because
``analytics`` imports numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from analytics.imagery.config import IMAGERY_METRICS

PASS = np.uint8(1)
NOT_EVALUATED = np.uint8(2)
SUSPECT = np.uint8(3)
FAIL = np.uint8(4)
MISSING = np.uint8(9)

FLAG_NAMES = MappingProxyType({1: "pass", 2: "not_evaluated", 3: "suspect", 4: "fail", 9: "missing"})

HOUR = 3600.0
MINUTE = 60.0


@dataclass(frozen=True, slots=True)
class QcThresholds:
    """Thresholds of one metric. ``None`` switches a test off (its flags are all "not evaluated").

    Units are the metric's own unit; rates are per second; durations and gaps in seconds.
    """

    #: operator range inside the sensor range: outside it a value is suspect (QARTOD gross range)
    suspect_lo: float | None = None
    suspect_hi: float | None = None
    #: spike: |v - neighbours' interpolation| above these is suspect / fail
    spike_suspect: float | None = None
    spike_fail: float | None = None
    #: rate of change: |dv/dt| above this is suspect (QARTOD rate of change has no fail level)
    rate_suspect: float | None = None
    #: flat line: values within ``flat_tolerance`` of the current one for this long
    flat_tolerance: float | None = None
    flat_suspect_s: float | None = None
    flat_fail_s: float | None = None
    #: neighbours further apart than this are not compared (spike, rate of change)
    max_gap_s: float = 3 * HOUR
    #: gap test: time since the previous reading above these is suspect / fail
    gap_suspect_s: float | None = 30 * MINUTE
    gap_fail_s: float | None = 6 * HOUR

    def __post_init__(self) -> None:
        for lo, hi, what in (
            (self.suspect_lo, self.suspect_hi, "suspect_lo/suspect_hi"),
            (self.spike_suspect, self.spike_fail, "spike_suspect/spike_fail"),
            (self.flat_suspect_s, self.flat_fail_s, "flat_suspect_s/flat_fail_s"),
            (self.gap_suspect_s, self.gap_fail_s, "gap_suspect_s/gap_fail_s"),
        ):
            if lo is not None and hi is not None and lo > hi:
                raise ValueError(f"QcThresholds: {what} must be ordered ({lo} > {hi})")
        if self.flat_tolerance is not None and self.flat_tolerance < 0:
            raise ValueError("QcThresholds: flat_tolerance must be >= 0")
        if self.max_gap_s <= 0:
            raise ValueError("QcThresholds: max_gap_s must be > 0")


_T = QcThresholds  # positional order: suspect_lo, suspect_hi, spike_suspect, spike_fail,
_H = HOUR  # rate_suspect, flat_tolerance, flat_suspect_s, flat_fail_s

#: Starting thresholds per catalog metric. Counters and quantities that legitimately sit still
#: (rain, drinking water at night, leaf wetness when dry, gases at zero, battery) have no flat line.
DEFAULT_THRESHOLDS: MappingProxyType[str, QcThresholds] = MappingProxyType(
    {
        "air_t": _T(-20, 45, 4, 8, 5 / 600, 0.05, 3 * _H, 12 * _H),
        "air_rh": _T(5, 100, 15, 30, 30 / 600, 0.1, 8 * _H, 36 * _H),
        "soil_vwc": _T(1, 60, 5, 10, 20 / 600, 0.005, 24 * _H, 96 * _H),
        "soil_t": _T(-10, 45, 2, 5, 3 / 600, 0.01, 12 * _H, 48 * _H),
        "leaf_wet": _T(None, None, 40, 80, None),
        "rain_mm": _T(None, 80, None, None, None),
        "wind_ms": _T(None, 40, 15, 30, 20 / 60, 0.01, 12 * _H, 48 * _H),
        "solar_wm2": _T(None, 1400, 500, 900, None, 0.5, 16 * _H, 40 * _H),
        "nh3_ppm": _T(None, 100, 20, 50, 50 / 600),
        "co2_ppm": _T(300, 10000, 1500, 4000, 3000 / 600, 1, 12 * _H, 48 * _H),
        "h2s_ppm": _T(None, 50, 5, 20, 20 / 600),
        "water_l": _T(None, 2000, None, None, None),
        "do_mgl": _T(0.5, 20, 3, 6, 4 / 600, 0.005, 6 * _H, 24 * _H),
        "ph": _T(4, 11, 0.5, 1.5, 1 / 600, 0.001, 12 * _H, 48 * _H),
        "water_t": _T(0, 40, 2, 4, 2 / 600, 0.01, 12 * _H, 48 * _H),
        "bat_v": _T(3.0, 14.5, 0.5, 1.5, None),
        "rssi_dbm": _T(-125, None, None, None, None),
        # Imagery statistics per block arrive every few days with cloudy gaps: no spike, rate,
        # flat-line or gap tests, only the catalog's range.
        **{name: _T(gap_suspect_s=None, gap_fail_s=None) for name in IMAGERY_METRICS},
    }
)
