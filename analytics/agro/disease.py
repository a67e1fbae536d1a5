"""Leaf-wetness duration and a temperature x wetness fungal disease risk index.

Wetness comes from a leaf-wetness sensor (``leaf_wet`` % at or above a threshold) or, without
one, from relative humidity >= 90 % (a common surrogate). A *wet period* accumulates wet hours
and ends after a dry break of ``break_h`` hours or a data gap; shorter dry breaks do not end it
(as in the infection models of Magarey et al. 2005, *Phytopathology* 95:92-100). A rule table
maps the period's wet hours and its mean temperature while wet to a risk level (0 none .. 3 high);
the default tables in ``analytics.agro.config.DISEASE_RULES`` are illustrative and meant to be
calibrated locally. Everything is causal: a reading's risk uses that reading and earlier ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from analytics.agro.config import LEAF_WET_THRESHOLD_PCT, WET_BREAK_H, DiseaseRule
from analytics.agro.durations import DEFAULT_MAX_GAP_S, band_fraction, seg_sum, segments
from analytics.qc.series import normalise, prev_valid, take_rows

F64 = NDArray[np.float64]


def wet_hours(
    times: ArrayLike,
    wetness: ArrayLike,
    threshold: float = LEAF_WET_THRESHOLD_PCT,
    max_gap_s: float = DEFAULT_MAX_GAP_S,
) -> F64:
    """Wet hours (reading at or above ``threshold``) of the segment ending at each reading.
    Pass RH with ``threshold=RH_WET_THRESHOLD_PCT`` when there is no wetness sensor."""
    s, a, b, h = segments(times, wetness, max_gap_s)
    return (band_fraction(a, b, threshold, np.inf) * h).reshape(s.shape)


@dataclass(frozen=True, slots=True)
class WetPeriods:
    """Per reading: wet hours of the current wet period so far, its mean temperature while wet
    (NaN before any wetness), and the risk level from the rule table."""

    wet_hours: F64
    mean_temp: F64
    risk: NDArray[np.int64]


def wet_periods(
    times: ArrayLike,
    wetness: ArrayLike,
    temperature: ArrayLike,
    rules: Sequence[DiseaseRule],
    threshold: float = LEAF_WET_THRESHOLD_PCT,
    break_h: float = WET_BREAK_H,
    max_gap_s: float = DEFAULT_MAX_GAP_S,
) -> WetPeriods:
    """Track wet periods and score them with ``rules`` (see the module docstring).

    ``temperature`` (°C) is sampled at the same times as ``wetness``; a segment's temperature is
    the mean of its two ends.
    """
    s, a, b, h = segments(times, wetness, max_gap_s)
    temp = normalise(times, temperature)
    if temp.v.shape != s.v.shape:
        raise ValueError("temperature must have the shape of wetness")
    w = band_fraction(a, b, threshold, np.inf) * h
    t_seg = (take_rows(temp.v, prev_valid(s.valid)) + temp.v) / 2.0
    wet = w > 0
    dry_h = np.where(wet, 0.0, h)
    gap = s.valid & (h == 0)  # first reading, or after a gap: a new period
    dry_run = seg_sum(dry_h, wet | gap)
    ended = (dry_run >= break_h) | gap
    period_w = seg_sum(w, ended)
    t_ok = np.isfinite(t_seg) & wet
    period_tw = seg_sum(np.where(t_ok, t_seg * w, 0.0), ended)
    period_wt = seg_sum(np.where(t_ok, w, 0.0), ended)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_t = np.where(period_wt > 0, period_tw / period_wt, np.nan)
    risk = risk_level(period_w, mean_t, rules)
    risk = np.where(s.valid, risk, 0)
    return WetPeriods(period_w.reshape(s.shape), mean_t.reshape(s.shape), risk.reshape(s.shape))


def risk_level(wet_h: ArrayLike, mean_temp: ArrayLike, rules: Sequence[DiseaseRule]) -> NDArray[np.int64]:
    """Highest ``level`` among rules met: wet hours >= rule.wet_hours, t_lo <= mean T < t_hi."""
    wh = np.asarray(wet_h, dtype=np.float64)
    mt = np.asarray(mean_temp, dtype=np.float64)
    out = np.zeros(np.broadcast_shapes(wh.shape, mt.shape), dtype=np.int64)
    for r in rules:
        if r.t_lo >= r.t_hi or r.wet_hours < 0 or r.level < 1:
            raise ValueError(f"bad disease rule {r}")
        with np.errstate(invalid="ignore"):
            met = (wh >= r.wet_hours) & (mt >= r.t_lo) & (mt < r.t_hi)
        out = np.where(met, np.maximum(out, r.level), out)
    return out
