"""Slow, obviously-correct loop versions of the QC tests (one series, one point at a time)."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np


def _valid(t: np.ndarray, v: np.ndarray, i: int) -> bool:
    return not (math.isnan(t[i]) or math.isnan(v[i]))


def gross_range(t, v, flo, fhi, slo, shi):  # type: ignore[no-untyped-def]
    out = []
    for i in range(len(v)):
        if not _valid(t, v, i):
            out.append(9)
        elif (flo is not None and v[i] < flo) or (fhi is not None and v[i] > fhi):
            out.append(4)
        elif (slo is not None and v[i] < slo) or (shi is not None and v[i] > shi):
            out.append(3)
        else:
            out.append(1)
    return out


def climatology(t, v, lo12, hi12, offset):  # type: ignore[no-untyped-def]
    out = []
    for i in range(len(v)):
        if not _valid(t, v, i):
            out.append(9)
            continue
        m = dt.datetime.fromtimestamp(t[i] + offset, tz=dt.UTC).month - 1
        lo, hi = lo12[m], hi12[m]
        if math.isnan(lo) and math.isnan(hi):
            out.append(2)
        elif v[i] < lo or v[i] > hi:
            out.append(3)
        else:
            out.append(1)
    return out


def _prev(t, v, i):  # type: ignore[no-untyped-def]
    for j in range(i - 1, -1, -1):
        if _valid(t, v, j):
            return j
    return None


def _next(t, v, i):  # type: ignore[no-untyped-def]
    for j in range(i + 1, len(v)):
        if _valid(t, v, j):
            return j
    return None


def spike(t, v, sus, fail, max_gap):  # type: ignore[no-untyped-def]
    out = []
    for i in range(len(v)):
        if not _valid(t, v, i):
            out.append(9)
            continue
        p, n = _prev(t, v, i), _next(t, v, i)
        if p is None or n is None or t[i] - t[p] > max_gap or t[n] - t[i] > max_gap:
            out.append(2)
            continue
        ref = abs(v[i] - (v[p] + (t[i] - t[p]) / (t[n] - t[p]) * (v[n] - v[p])))
        out.append(4 if fail is not None and ref > fail else 3 if sus is not None and ref > sus else 1)
    return out


def rate_of_change(t, v, sus, max_gap):  # type: ignore[no-untyped-def]
    out = []
    for i in range(len(v)):
        if not _valid(t, v, i):
            out.append(9)
            continue
        p = _prev(t, v, i)
        if p is None or t[i] - t[p] > max_gap:
            out.append(2)
        else:
            out.append(3 if abs(v[i] - v[p]) / (t[i] - t[p]) > sus else 1)
    return out


def flat_line(t, v, tol, sus_s, fail_s):  # type: ignore[no-untyped-def]
    out = []
    for i in range(len(v)):
        if not _valid(t, v, i):
            out.append(9)
            continue
        flag = 1
        for k, (dur, f) in enumerate(((sus_s, 3), (fail_s, 4))):
            starts = [j for j in range(i + 1) if _valid(t, v, j) and t[j] <= t[i] - dur]
            if not starts:
                if k == 0:
                    flag = 2
                continue
            window = [v[j] for j in range(max(starts), i + 1) if _valid(t, v, j)]
            if all(abs(x - v[i]) < tol for x in window):
                flag = f
        out.append(flag)
    return out


def gap(t, v, sus_s, fail_s):  # type: ignore[no-untyped-def]
    out = []
    for i in range(len(v)):
        if not _valid(t, v, i):
            out.append(9)
            continue
        p = _prev(t, v, i)
        if p is None:
            out.append(2)
            continue
        d = t[i] - t[p]
        out.append(4 if d > fail_s else 3 if d > sus_s else 1)
    return out


def aggregate(*flags):  # type: ignore[no-untyped-def]
    out = []
    for fs in zip(*flags, strict=True):
        s = set(int(f) for f in fs)
        out.append(9 if 9 in s else 4 if 4 in s else 3 if 3 in s else 1 if 1 in s else 2)
    return out


def as_array(x) -> np.ndarray:  # type: ignore[no-untyped-def]
    return np.asarray(x, dtype=np.uint8)
