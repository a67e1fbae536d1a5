"""Slow references for the agronomic indices: explicit loops, dense numerical integration."""

from __future__ import annotations

import itertools
import math
import statistics

import numpy as np

SUB = 2000  # sub-steps per segment for numerical integration


def _valid_points(t: np.ndarray, v: np.ndarray) -> list[int]:
    return [i for i in range(len(v)) if not (math.isnan(t[i]) or math.isnan(v[i]))]


def usable_segments(t, v, max_gap):  # type: ignore[no-untyped-def]
    """[(end index, t0, t1, v0, v1)] between consecutive valid readings within max_gap."""
    pts = _valid_points(t, v)
    return [(j, t[i], t[j], v[i], v[j]) for i, j in itertools.pairwise(pts) if t[j] - t[i] <= max_gap]


def _dense(v0: float, v1: float) -> np.ndarray:
    return v0 + (v1 - v0) * (np.arange(SUB) + 0.5) / SUB


def hours_in_band(t, v, lo, hi, max_gap):  # type: ignore[no-untyped-def]
    out = np.zeros(len(v))
    for j, t0, t1, v0, v1 in usable_segments(t, v, max_gap):
        x = _dense(v0, v1)
        out[j] = np.mean((x >= lo) & (x <= hi)) * (t1 - t0) / 3600
    return out


def longest_run(t, v, lo, hi, max_gap):  # type: ignore[no-untyped-def]
    best = run = 0.0
    last_end = None
    for _j, t0, t1, v0, v1 in usable_segments(t, v, max_gap):
        if last_end is not None and t0 != last_end:
            run = 0.0  # a gap broke the path
        step = (t1 - t0) / 3600 / SUB
        for x in _dense(v0, v1):
            run = run + step if lo <= x <= hi else 0.0
            best = max(best, run)
        last_end = t1
    return best


def degree_days(t, v, base, max_gap):  # type: ignore[no-untyped-def]
    out = np.zeros(len(v))
    for j, t0, t1, v0, v1 in usable_segments(t, v, max_gap):
        out[j] = np.mean(np.maximum(_dense(v0, v1) - base, 0)) * (t1 - t0) / 86400
    return out


def water_drop(x, days, min_days, alert):  # type: ignore[no-untyped-def]
    change, flags = [], []
    for d in range(len(x)):
        prev = [y for y in x[max(0, d - days) : d] if not math.isnan(y)]
        if len(prev) < min_days or statistics.median(prev) <= 0 or math.isnan(x[d]):
            change.append(math.nan)
            flags.append(False)
        else:
            c = x[d] / statistics.median(prev) - 1
            change.append(c)
            flags.append(c <= -alert)
    return np.array(change), np.array(flags)


def _frac_above(a: float, b: float, thr: float) -> float:
    if a >= thr and b >= thr:
        return 1.0
    if a < thr and b < thr:
        return 0.0
    return (max(a, b) - thr) / abs(b - a)


def wet_periods(t, wet, temp, rules, thr, break_h, max_gap):  # type: ignore[no-untyped-def]
    n = len(wet)
    wh, mt, risk = np.zeros(n), np.full(n, np.nan), np.zeros(n, dtype=int)
    acc_w = acc_tw = acc_wt = dry = 0.0
    prev = None
    for i in range(n):
        if math.isnan(t[i]) or math.isnan(wet[i]):
            wh[i], mt[i] = acc_w, (acc_tw / acc_wt if acc_wt > 0 else np.nan)
            continue
        if prev is None or t[i] - t[prev] > max_gap:
            acc_w = acc_tw = acc_wt = dry = 0.0
        else:
            h = (t[i] - t[prev]) / 3600
            w = _frac_above(wet[prev], wet[i], thr) * h
            if w > 0:
                dry = 0.0
                acc_w += w
                tseg = (temp[prev] + temp[i]) / 2
                if not math.isnan(tseg):
                    acc_tw += tseg * w
                    acc_wt += w
            else:
                dry += h
                if dry >= break_h:
                    acc_w = acc_tw = acc_wt = 0.0
        prev = i
        wh[i] = acc_w
        mt[i] = acc_tw / acc_wt if acc_wt > 0 else np.nan
        lvl = 0
        for r in rules:
            if acc_w >= r.wet_hours and not math.isnan(mt[i]) and r.t_lo <= mt[i] < r.t_hi:
                lvl = max(lvl, r.level)
        risk[i] = lvl
    return wh, mt, risk


def water_balance(et0, rain, kc, fc, wp, zr, p, dr0, ro, irrigate, adjust_p):  # type: ignore[no-untyped-def]
    taw = 1000 * (fc - wp) * zr
    dr = min(max(dr0, 0.0), taw)
    rows = []
    for d in range(len(et0)):
        e = 0.0 if math.isnan(et0[d]) else et0[d]
        etc = kc[d] * e
        pd_ = min(max(p + 0.04 * (5 - etc), 0.1), 0.8) if adjust_p else p
        raw = pd_ * taw
        ks = 1.0 if dr <= raw else min(max((taw - dr) / ((1 - pd_) * taw), 0.0), 1.0)
        r = 0.0 if math.isnan(rain[d]) else rain[d]
        dr = dr + ks * etc - r * (1 - ro)
        dp = max(-dr, 0.0)
        dr = min(max(dr, 0.0), taw)
        irr = dr if irrigate and dr > raw else 0.0
        dr -= irr
        rows.append((dr, ks, ks * etc, irr, dp))
    return np.array(rows).T
