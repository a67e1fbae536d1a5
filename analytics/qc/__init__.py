"""Sensor quality control after IOOS QARTOD: per-reading flags, vectorised over many series.

Flags: pass=1, not evaluated=2, suspect=3, fail=4, missing=9 (``analytics.qc.config``).
Layout of inputs: ``analytics.qc.series``. The tests: ``analytics.qc.checks``. Running them all
and combining: ``analytics.qc.run``. Gross ranges from the metric catalog: ``kernel.qc``.
"""

from analytics.qc.checks import climatology, flat_line, gap, gross_range, rate_of_change, spike
from analytics.qc.config import (
    DEFAULT_THRESHOLDS,
    FAIL,
    FLAG_NAMES,
    MISSING,
    NOT_EVALUATED,
    PASS,
    SUSPECT,
    QcThresholds,
)
from analytics.qc.run import CAUSAL_TESTS, QcResult, aggregate, history_needed_s, run_qc
from analytics.qc.series import pad_ragged

__all__ = [
    "CAUSAL_TESTS",
    "DEFAULT_THRESHOLDS",
    "FAIL",
    "FLAG_NAMES",
    "MISSING",
    "NOT_EVALUATED",
    "PASS",
    "SUSPECT",
    "QcResult",
    "QcThresholds",
    "aggregate",
    "climatology",
    "flat_line",
    "gap",
    "gross_range",
    "history_needed_s",
    "pad_ragged",
    "rate_of_change",
    "run_qc",
    "spike",
]
