"""Seeded synthetic farm series with faults injected at known positions, and event-level scoring.

Five kinds of series, each with the fault a field technician meets on it:

==============  =====================================================  ==========================
series          normal behaviour                                       injected fault
==============  =====================================================  ==========================
``air_t``       diurnal cycle (min near dawn, max mid-afternoon),      ``heat_ramp``: +9 °C over
                day-to-day weather swings, AR(1) noise                 5 h, held 3 h, back in 2 h
``soil_vwc``    drying by day-time ET, irrigation to field capacity    ``stuck``: the probe
                every ~2 days at 06:00, quantised to 0.1 %             repeats one value for 12 h
``do_mgl``      photosynthesis by day, respiration at night: daily     ``dawn_sag``: a night that
                maximum in the afternoon, minimum at dawn              falls to ~2 mg/L at dawn
``nh3_ppm``     pig-barn ammonia following ventilation (diurnal) and   ``spike``: one reading
                noise                                                  ~10 ppm above normal
``ph``          pond pH with a small diurnal swing                     ``drift``: sensor drift of
                                                                       +0.6 pH over 36 h
==============  =====================================================  ==========================

Pure numpy; :func:`generate` is deterministic for a seed.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

KINDS = ("air_t", "soil_vwc", "do_mgl", "nh3_ppm", "ph")
FAULT_OF = {
    "air_t": "heat_ramp",
    "soil_vwc": "stuck",
    "do_mgl": "dawn_sag",
    "nh3_ppm": "spike",
    "ph": "drift",
}
_DAY = 86_400.0


@dataclass(frozen=True)
class Fault:
    series: int  # row in the generated arrays
    kind: str
    start: int  # first faulty point (index)
    end: int  # last faulty point (inclusive)


@dataclass
class FarmData:
    times: np.ndarray  # (N, T) Unix seconds
    values: np.ndarray  # (N, T)
    kinds: list[str]  # series kind per row
    faults: list[Fault]
    interval_s: float


def _hours(times: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.mod(times, _DAY) / 3600.0
    return out


def _daily(t: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per-day parameters (one per day, centred at noon) interpolated smoothly over ``t``."""
    centres = t[0] - (t[0] % _DAY) + _DAY / 2 + _DAY * np.arange(len(values))
    out: np.ndarray = np.interp(t, centres, values)
    return out


def _ar1(rng: np.random.Generator, n: int, phi: float, sd: float) -> np.ndarray:
    e = rng.normal(0.0, sd, n)
    out = np.empty(n)
    acc = 0.0
    for i in range(n):
        acc = phi * acc + e[i]
        out[i] = acc
    return out


def _air_t(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    h = _hours(t)
    days = int(np.ceil((t[-1] - t[0]) / _DAY)) + 2
    day_mean = 24.0 + np.cumsum(rng.normal(0, 0.8, days))
    day_amp = 5.0 + rng.uniform(-1.0, 1.0, days)
    d = ((t - t[0]) // _DAY).astype(int)
    shape = np.cos(2 * np.pi * (h - 15.0) / 24.0)  # max at 15:00, min at 03:00 (dawn-ish)
    out: np.ndarray = day_mean[d] + day_amp[d] * shape + _ar1(rng, len(t), 0.9, 0.15)
    return out


def _soil_vwc(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    h = _hours(t)
    dt_h = np.diff(t, prepend=t[0]) / 3600.0
    et = np.where((h > 8) & (h < 18), 0.12, 0.01) * dt_h  # % VWC per hour lost
    v = np.empty(len(t))
    level = 32.0
    next_irrigation = t[0] + rng.uniform(1.0, 2.0) * _DAY
    for i in range(len(t)):
        level -= et[i] * rng.uniform(0.7, 1.3)
        if t[i] >= next_irrigation and 6.0 <= h[i] < 6.5:
            level = 34.0 + rng.normal(0, 0.3)
            next_irrigation = t[i] + rng.uniform(1.5, 2.5) * _DAY
        v[i] = level
    return np.round(v + rng.normal(0, 0.08, len(t)), 1)


def _do_mgl(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    h = _hours(t)
    # rises from dawn (06:00) to a 16:00 maximum, falls through the night to the dawn minimum
    phase = np.where((h >= 6) & (h < 16), (h - 6) / 10.0, 1.0 - np.mod(h - 16, 24) / 14.0)
    days = int(np.ceil((t[-1] - t[0]) / _DAY)) + 2
    low = _daily(t, 4.6 + rng.normal(0, 0.2, days))
    high = _daily(t, 9.0 + rng.normal(0, 0.4, days))
    base = low + (high - low) * np.sin(np.pi / 2 * np.clip(phase, 0, 1)) ** 1.5
    out: np.ndarray = base + _ar1(rng, len(t), 0.8, 0.06)
    return out


def _nh3(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    h = _hours(t)
    vent = 1.0 - 0.35 * np.clip(np.cos(2 * np.pi * (h - 14) / 24), 0, None)  # more air by day
    out: np.ndarray = 12.0 * vent + _ar1(rng, len(t), 0.7, 0.5)
    return out


def _ph(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    h = _hours(t)
    out: np.ndarray = 7.6 + 0.25 * np.sin(2 * np.pi * (h - 10) / 24) + _ar1(rng, len(t), 0.8, 0.02)
    return out


_MAKERS = {"air_t": _air_t, "soil_vwc": _soil_vwc, "do_mgl": _do_mgl, "nh3_ppm": _nh3, "ph": _ph}


def _inject(
    rng: np.random.Generator, kind: str, t: np.ndarray, v: np.ndarray, lo: int, hi: int
) -> tuple[int, int]:
    """Inject the kind's fault somewhere in [lo, hi); returns the faulty index range."""
    per_h = 3600.0 / float(np.median(np.diff(t)))
    h = _hours(t)
    if kind == "air_t":  # heat-stress ramp starting late morning
        cands = np.nonzero((np.abs(h - 10.0) < 0.01 + 0.5 / per_h) & (np.arange(len(t)) >= lo))[0]
        s = int(rng.choice(cands[cands < hi]))
        up, hold, down = int(5 * per_h), int(3 * per_h), int(2 * per_h)
        bump = np.concatenate([np.linspace(0, 9, up), np.full(hold, 9.0), np.linspace(9, 0, down)])
        v[s : s + len(bump)] += bump
        return s, s + len(bump) - 1
    if kind == "soil_vwc":  # stuck probe for 12 h
        n = int(12 * per_h)
        s = int(rng.integers(lo, min(hi, len(t) - n)))
        v[s : s + n] = v[s]
        return s, s + n - 1
    if kind == "do_mgl":  # a night that sinks to ~2 mg/L at dawn (from 20:00 to 08:00)
        cands = np.nonzero((np.abs(h - 20.0) < 0.01 + 0.5 / per_h) & (np.arange(len(t)) >= lo))[0]
        s = int(rng.choice(cands[cands < hi]))
        n = int(12 * per_h)
        dawn = int(10 * per_h)
        sag = np.concatenate([np.linspace(0, 1, dawn), np.linspace(1, 0, n - dawn)])
        seg = v[s : s + n]
        target = 2.0
        v[s : s + n] = seg - sag * np.maximum(seg - target, 0.0) + sag * rng.normal(0.0, 0.08, n)
        return s, s + n - 1
    if kind == "nh3_ppm":  # one spike
        s = int(rng.integers(lo, hi))
        v[s] += 10.0 + rng.uniform(0, 4)
        return s, s
    if kind == "ph":  # drift +0.6 over 36 h, then stays
        n = int(36 * per_h)
        s = int(rng.integers(lo, min(hi, len(t) - n)))
        ramp = np.linspace(0, 0.6, n)
        v[s : s + n] += ramp
        v[s + n :] += 0.6
        return s, s + n - 1
    raise ValueError(f"unknown series kind {kind!r}")


def generate(
    seed: int = 0,
    farms: int = 10,
    days: float = 14.0,
    interval_s: float = 300.0,
    fault_fraction: float = 0.6,
    start: float = 1_717_200_000.0,
) -> FarmData:
    """``farms`` farms x one series of each kind; a fault in ``fault_fraction`` of the series.

    Faults start after the first ``days/2`` days (the detector learns the series first) and
    before the last day.
    """
    rng = np.random.default_rng(seed)
    n_pts = int(days * _DAY / interval_s)
    t = start + interval_s * np.arange(n_pts)
    lo = int(n_pts * 0.5)
    hi = n_pts - int(_DAY / interval_s)
    rows: list[np.ndarray] = []
    kinds: list[str] = []
    faults: list[Fault] = []
    for _ in range(farms):
        for kind in KINDS:
            v = _MAKERS[kind](rng, t)
            if rng.random() < fault_fraction:
                a, b = _inject(rng, kind, t, v, lo, hi)
                faults.append(Fault(len(rows), FAULT_OF[kind], a, min(b, n_pts - 1)))
            rows.append(v)
            kinds.append(kind)
    values = np.array(rows)
    return FarmData(np.broadcast_to(t, values.shape).copy(), values, kinds, faults, interval_s)


@dataclass(frozen=True)
class EventScore:
    precision: float
    recall: float
    true_alarms: int
    false_alarms: int
    detected: int
    faults: int
    by_kind: dict[str, tuple[int, int]]  # fault kind -> (detected, total)


def event_precision_recall(
    data: FarmData, scores: np.ndarray, threshold: float, after_s: float = 3 * 3600.0, merge_s: float = 3600.0
) -> EventScore:
    """Event-level precision and recall of alarms (points with ``score >= threshold``).

    Alarm points closer than ``merge_s`` form one alarm. An alarm is true when it starts inside a
    fault window or up to ``after_s`` after its end; a fault is detected when such an alarm exists.
    """
    fault_rows: dict[int, list[Fault]] = {}
    for f in data.faults:
        fault_rows.setdefault(f.series, []).append(f)
    true_alarms = false_alarms = 0
    hit: set[Fault] = set()
    for i in range(scores.shape[0]):
        fire = np.nonzero(np.nan_to_num(scores[i]) >= threshold)[0]
        if len(fire) == 0:
            continue
        t = data.times[i]
        starts = [fire[0]] + [b for a, b in itertools.pairwise(fire) if t[b] - t[a] > merge_s]
        for s in starts:
            owner = [f for f in fault_rows.get(i, []) if f.start <= s and t[s] <= t[f.end] + after_s]
            if owner:
                true_alarms += 1
                hit.update(owner)
            else:
                false_alarms += 1
    kinds = sorted({f.kind for f in data.faults})
    by_kind = {
        k: (sum(1 for f in hit if f.kind == k), sum(1 for f in data.faults if f.kind == k)) for k in kinds
    }
    alarms = true_alarms + false_alarms
    return EventScore(
        precision=true_alarms / alarms if alarms else 1.0,
        recall=len(hit) / len(data.faults) if data.faults else 1.0,
        true_alarms=true_alarms,
        false_alarms=false_alarms,
        detected=len(hit),
        faults=len(data.faults),
        by_kind=by_kind,
    )
