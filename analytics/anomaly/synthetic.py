"""Seeded synthetic farm series with faults injected at known positions, and event-level scoring.

Seven kinds of series per farm, each with the faults a field technician meets on it, and the
physical context that is *not* a fault:

==============  =====================================================  ==========================
series          normal behaviour (context that must not alarm)         injected fault
==============  =====================================================  ==========================
``air_t``       barn air: diurnal cycle, warming from sunrise to a     ``barn_heat``: +9 °C over
                mid-afternoon maximum, weather swings, AR(1) noise     5 h, held 3 h, back in 2 h
``soil_vwc``    drying by day-time ET, irrigation every ~2 days at     ``stuck``: the probe
                06:00, **jumps during the farm's rain** (0.1 % steps)  repeats one value for 12 h
``do_mgl``      photosynthesis by day, respiration at night: daily     ``dawn_sag``: a night that
                maximum in the afternoon, minimum at dawn              falls to ~2 mg/L at dawn;
                                                                       ``dead``: reads 0 from then
``nh3_ppm``     pig-barn ammonia following ventilation (diurnal)       ``spike``: one reading
                and noise                                              ~10 ppm above normal
``ph``          pond pH with a small diurnal swing                     ``drift``: +0.6 pH over 36 h
``water_l``     drinking water since midnight (a daily counter: it     ``water_drop``: the herd
                **rolls over to 0 at midnight**), drunk mostly by day  drinks 30 % for 8 h
``rain_mm``     rain per interval, a few showers a week (context for   none
                ``soil_vwc``)
==============  =====================================================  ==========================

Pure numpy; :func:`generate` is deterministic for a seed.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from analytics.anomaly import farm
from analytics.qc import DEFAULT_THRESHOLDS, QcThresholds, run_qc

KINDS = ("air_t", "soil_vwc", "do_mgl", "nh3_ppm", "ph", "water_l", "rain_mm")
#: the faults each kind of series can get (one per faulty series, drawn at random)
FAULT_OF: dict[str, tuple[str, ...]] = {
    "air_t": ("barn_heat",),
    "soil_vwc": ("stuck",),
    "do_mgl": ("dawn_sag", "dead"),
    "nh3_ppm": ("spike",),
    "ph": ("drift",),
    "water_l": ("water_drop",),
    "rain_mm": (),
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
    farms: list[int] = field(default_factory=list)  # farm number per row
    irrigated: np.ndarray | None = None  # (N, T) True where the row's irrigation ran (soil rows)

    def rows_of(self, farm: int, kind: str) -> int:
        """Row of the farm's series of this kind."""
        for i, (f, k) in enumerate(zip(self.farms, self.kinds, strict=True)):
            if f == farm and k == kind:
                return i
        raise KeyError((farm, kind))


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


def _rain(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """mm per interval: showers of 1-4 h every 2-5 days at any hour."""
    out = np.zeros(len(t))
    at = t[0] + rng.uniform(0.5, 3.0) * _DAY
    while at < t[-1]:
        dur = rng.uniform(1.0, 4.0) * 3600.0
        rate_mm_h = rng.uniform(2.0, 10.0)
        inside = (t >= at) & (t < at + dur)
        dt_h = float(np.median(np.diff(t))) / 3600.0
        out[inside] = np.round(rate_mm_h * dt_h * rng.uniform(0.3, 1.7, int(inside.sum())), 1)
        at += dur + rng.uniform(2.0, 5.0) * _DAY
    return out


def _water(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """Litres drunk since midnight: a daily counter that rolls over to 0 at midnight."""
    h = _hours(t)
    dt_h = np.diff(t, prepend=t[0] - (t[1] - t[0])) / 3600.0
    herd = 40.0 * rng.uniform(0.8, 1.2)  # litres per hour at the daytime peak
    shape = 0.15 + 0.85 * np.clip(np.sin(np.pi * (h - 5.0) / 15.0), 0.0, None)  # 05:00-20:00
    day_level = _daily(t, rng.uniform(0.9, 1.1, int(np.ceil((t[-1] - t[0]) / _DAY)) + 2))
    drunk = herd * shape * day_level * dt_h * rng.gamma(8.0, 1.0 / 8.0, len(t))
    day = np.floor(t / _DAY)
    out = np.empty(len(t))
    acc = 0.0
    for i in range(len(t)):
        if i and day[i] != day[i - 1]:
            acc = 0.0
        acc += drunk[i]
        out[i] = acc
    return np.round(out, 1)


def _soil_vwc(
    rng: np.random.Generator,
    t: np.ndarray,
    rain: np.ndarray | None = None,
    irrigated: np.ndarray | None = None,
) -> np.ndarray:
    """Soil moisture; ``irrigated`` (if given) is set True where the farm's irrigation ran."""
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
            if irrigated is not None:
                irrigated[i] = True
        if rain is not None and rain[i] > 0:  # infiltration: about 0.8 % VWC per mm, to saturation
            level = min(level + 0.8 * rain[i], 40.0)
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


_MAKERS = {"air_t": _air_t, "do_mgl": _do_mgl, "nh3_ppm": _nh3, "ph": _ph, "water_l": _water}


def _inject(
    rng: np.random.Generator, kind: str, t: np.ndarray, v: np.ndarray, lo: int, hi: int
) -> tuple[int, int]:
    """Inject the kind's fault somewhere in [lo, hi); returns the faulty index range."""
    per_h = 3600.0 / float(np.median(np.diff(t)))
    h = _hours(t)
    if kind == "barn_heat":  # heat-stress ramp starting late morning (ventilation failure)
        cands = np.nonzero((np.abs(h - 10.0) < 0.01 + 0.5 / per_h) & (np.arange(len(t)) >= lo))[0]
        s = int(rng.choice(cands[cands < hi]))
        up, hold, down = int(5 * per_h), int(3 * per_h), int(2 * per_h)
        bump = np.concatenate([np.linspace(0, 9, up), np.full(hold, 9.0), np.linspace(9, 0, down)])
        v[s : s + len(bump)] += bump
        return s, s + len(bump) - 1
    if kind == "stuck":  # stuck probe for 12 h
        n = int(12 * per_h)
        s = int(rng.integers(lo, min(hi, len(t) - n)))
        v[s : s + n] = v[s]
        return s, s + n - 1
    if kind == "dawn_sag":  # a night that sinks to ~2 mg/L at dawn (from 20:00 to 08:00)
        cands = np.nonzero((np.abs(h - 20.0) < 0.01 + 0.5 / per_h) & (np.arange(len(t)) >= lo))[0]
        s = int(rng.choice(cands[cands < hi]))
        n = int(12 * per_h)
        dawn = int(10 * per_h)
        sag = np.concatenate([np.linspace(0, 1, dawn), np.linspace(1, 0, n - dawn)])
        seg = v[s : s + n]
        target = 2.0
        v[s : s + n] = seg - sag * np.maximum(seg - target, 0.0) + sag * rng.normal(0.0, 0.08, n)
        return s, s + n - 1
    if kind == "spike":  # one reading
        s = int(rng.integers(lo, hi))
        v[s] += 10.0 + rng.uniform(0, 4)
        return s, s
    if kind == "dead":  # the probe dies: it reads 0 from then on
        s = int(rng.integers(lo, hi))
        v[s:] = 0.0
        return s, len(t) - 1
    if kind == "water_drop":  # the herd drinks 30 % for 8 h from mid-morning (a blocked line)
        cands = np.nonzero((np.abs(h - 9.0) < 0.01 + 0.5 / per_h) & (np.arange(len(t)) >= lo))[0]
        s = int(rng.choice(cands[cands < hi]))
        n = int(8 * per_h)
        drunk = np.diff(v, prepend=0.0)
        drunk[drunk < 0] = v[drunk < 0]  # after a rollover the reading is the first interval's
        drunk[s : s + n] *= 0.3
        day = np.floor(t / _DAY)
        start_of_day = np.concatenate([[True], day[1:] != day[:-1]])
        acc = 0.0
        for i in range(len(t)):
            acc = drunk[i] if start_of_day[i] else acc + drunk[i]
            v[i] = round(acc, 1)
        return s, s + n - 1
    if kind == "drift":  # drift +0.6 over 36 h, then stays
        n = int(36 * per_h)
        s = int(rng.integers(lo, min(hi, len(t) - n)))
        ramp = np.linspace(0, 0.6, n)
        v[s : s + n] += ramp
        v[s + n :] += 0.6
        return s, s + n - 1
    raise ValueError(f"unknown fault kind {kind!r}")


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
    farm_of: list[int] = []
    faults: list[Fault] = []
    irrigated: list[np.ndarray] = []
    for farm_no in range(farms):
        rain = _rain(rng, t)
        for kind in KINDS:
            valve = np.zeros(n_pts, dtype=bool)
            if kind == "rain_mm":
                v = rain
            elif kind == "soil_vwc":
                v = _soil_vwc(rng, t, rain, valve)
            else:
                v = _MAKERS[kind](rng, t)
            if FAULT_OF[kind] and rng.random() < fault_fraction:
                fault = str(rng.choice(FAULT_OF[kind]))
                a, b = _inject(rng, fault, t, v, lo, hi)
                faults.append(Fault(len(rows), fault, a, min(b, n_pts - 1)))
            rows.append(v)
            kinds.append(kind)
            farm_of.append(farm_no)
            irrigated.append(valve)
    values = np.array(rows)
    times = np.broadcast_to(t, values.shape).copy()
    return FarmData(times, values, kinds, faults, interval_s, farm_of, np.array(irrigated))


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
    """Event-level precision and recall of alarms (points with ``score >= threshold``)."""
    return alarm_precision_recall(data, np.nan_to_num(scores) >= threshold, after_s, merge_s)


def alarm_precision_recall(
    data: FarmData, alarms: np.ndarray, after_s: float = 3 * 3600.0, merge_s: float = 3600.0
) -> EventScore:
    """Event-level precision and recall of boolean alarm points ``(N, T)``.

    Alarm points closer than ``merge_s`` form one alarm. An alarm is true when it starts inside a
    fault window or up to ``after_s`` after its end; a fault is detected when such an alarm exists.
    """
    fault_rows: dict[int, list[Fault]] = {}
    for f in data.faults:
        fault_rows.setdefault(f.series, []).append(f)
    true_alarms = false_alarms = 0
    hit: set[Fault] = set()
    for i in range(alarms.shape[0]):
        fire = np.nonzero(alarms[i])[0]
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
    alarms_n = true_alarms + false_alarms
    return EventScore(
        precision=true_alarms / alarms_n if alarms_n else 1.0,
        recall=len(hit) / len(data.faults) if data.faults else 1.0,
        true_alarms=true_alarms,
        false_alarms=false_alarms,
        detected=len(hit),
        faults=len(data.faults),
        by_kind=by_kind,
    )


def farm_masks(data: FarmData) -> tuple[np.ndarray, np.ndarray]:
    """QC alarms and context-explained readings of every generated series, ``(N, T)`` each.

    QC runs causally with the default thresholds of each kind's metric
    (``analytics.qc.DEFAULT_THRESHOLDS``; without the catalog's sensor range, which lives in
    ``kernel``). Context: a soil-moisture series is explained while it rains on its farm and
    for two hours after; the rain gauge's own showers are weather, not faults; the drinking-water
    counter is explained at its midnight rollover. Added to QC's alarms: the stuck-probe rule
    (``farm.stuck_alarms``, every series but the rain gauge) and the slow-trend test
    (``farm.drift_alarms``, the kinds in ``farm.DRIFT_METRICS``).
    """
    qc = np.zeros(data.values.shape, dtype=bool)
    explained = np.zeros(data.values.shape, dtype=bool)
    drift_rows = [i for i, kind in enumerate(data.kinds) if kind in farm.DRIFT_METRICS]
    if drift_rows:
        qc[drift_rows] = farm.drift_alarms(data.times[drift_rows], data.values[drift_rows])
    for i, kind in enumerate(data.kinds):
        t, v = data.times[i], data.values[i]
        res = run_qc(t, v, DEFAULT_THRESHOLDS.get(kind, QcThresholds()), causal=True)
        qc[i] |= farm.qc_alarms(res)
        water_in = None
        if kind in farm.WATERED:
            water_in = np.nan_to_num(data.values[data.rows_of(data.farms[i], "rain_mm")])
            if data.irrigated is not None:
                water_in = water_in + data.irrigated[i]
        explained[i] = farm.explained(kind, t, v, rain_times=t, rain=water_in)
    # a flat stretch far longer than the probe's own (not the rain gauge's dry days: weather)
    qc |= farm.stuck_alarms(data.times, data.values) & ~explained
    return qc, explained
