"""Run every QC test of a metric and combine the flags into one per reading.

``aggregate`` follows QARTOD's rule: missing wins, then the worst of fail > suspect > pass;
a reading is "not evaluated" only when no test evaluated it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from analytics.qc import checks
from analytics.qc.config import FAIL, MISSING, NOT_EVALUATED, PASS, SUSPECT, QcThresholds

Flags = NDArray[np.uint8]

#: tests whose flag for a reading depends on it and earlier readings only
CAUSAL_TESTS = ("gross_range", "climatology", "rate_of_change", "flat_line", "gap")


def aggregate(*flags: ArrayLike) -> Flags:
    """Combine per-test flags of one shape into one flag per reading (QARTOD aggregate)."""
    if not flags:
        raise ValueError("aggregate needs at least one flag array")
    stack = np.stack([np.asarray(f, dtype=np.uint8) for f in flags])
    bad = ~np.isin(stack, (PASS, NOT_EVALUATED, SUSPECT, FAIL, MISSING))
    if bad.any():
        raise ValueError(f"unknown flag values: {sorted(set(stack[bad].tolist()))}")
    out = np.full(stack.shape[1:], NOT_EVALUATED, dtype=np.uint8)
    for flag in (PASS, SUSPECT, FAIL, MISSING):
        out[(stack == flag).any(axis=0)] = flag
    return out


@dataclass(frozen=True, slots=True)
class QcResult:
    """Per-test flags and their aggregate, each of the values' shape."""

    gross_range: Flags
    climatology: Flags
    spike: Flags
    rate_of_change: Flags
    flat_line: Flags
    gap: Flags
    aggregate: Flags

    def tests(self) -> dict[str, Flags]:
        return {
            "gross_range": self.gross_range,
            "climatology": self.climatology,
            "spike": self.spike,
            "rate_of_change": self.rate_of_change,
            "flat_line": self.flat_line,
            "gap": self.gap,
        }


def run_qc(
    times: ArrayLike,
    values: ArrayLike,
    thresholds: QcThresholds,
    *,
    sensor_lo: ArrayLike | None = None,
    sensor_hi: ArrayLike | None = None,
    month_lo: ArrayLike | None = None,
    month_hi: ArrayLike | None = None,
    utc_offset_s: float = 0.0,
    causal: bool = False,
) -> QcResult:
    """All tests on one metric's series. ``sensor_lo``/``sensor_hi`` is the gross (fail) range,
    normally the metric catalog's; ``month_lo``/``month_hi`` the optional climatology.

    With ``causal=True`` the spike test is left out of the aggregate, so every aggregate flag is
    final the moment its reading arrives (streaming ingest); the spike flags are still returned.
    """
    th = thresholds
    gr = checks.gross_range(times, values, sensor_lo, sensor_hi, th.suspect_lo, th.suspect_hi)
    if month_lo is not None and month_hi is not None:
        cl = checks.climatology(times, values, month_lo, month_hi, utc_offset_s)
    else:
        cl = np.where(gr == MISSING, MISSING, NOT_EVALUATED).astype(np.uint8)
    sp = checks.spike(times, values, th.spike_suspect, th.spike_fail, th.max_gap_s)
    rc = checks.rate_of_change(times, values, th.rate_suspect, th.max_gap_s)
    fl = checks.flat_line(times, values, th.flat_tolerance, th.flat_suspect_s, th.flat_fail_s)
    gp = checks.gap(times, values, th.gap_suspect_s, th.gap_fail_s)
    parts = [gr, cl, rc, fl, gp] if causal else [gr, cl, sp, rc, fl, gp]
    return QcResult(gr, cl, sp, rc, fl, gp, aggregate(*parts))


def history_needed_s(thresholds: QcThresholds) -> float:
    """How much history (seconds) before new readings makes their causal flags exact."""
    spans = [thresholds.max_gap_s]
    for x in (thresholds.flat_suspect_s, thresholds.flat_fail_s, thresholds.gap_fail_s):
        if x is not None:
            spans.append(x)
    return max(spans)
