"""Slow, plain reference of the streaming anomaly detector: one series, one point at a time.

Written from the method description (docs/analytics.md, "Streaming anomaly detection"), not from
the vectorised code, and sharing none of it: Python loops and lists, one series' state in a
plain object. The arithmetic is done on numpy float32 / float64 *scalars* in the same precision
the stored state has (float32 state, float64 times), so the two implementations can be compared
point for point instead of "roughly".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

F = np.float32
D = np.float64
DAY = 86_400.0
WEEK = 7 * DAY
# predictor order: persistence, slow mean, daily + offset, weekly + offset,
# persistence + daily change, persistence + weekly change
EXTRAPOLATING = (True, False, False, False, True, True)
BASELINE = (False, True, True, True, False, False)
SEASONAL = (False, False, True, True, False, False)
LAZY = 64  # histogram counts are decayed once every LAZY points of a series


@dataclass
class Cfg:
    """The detector's constants (mirrors analytics.anomaly.DetectorConfig field by field)."""

    interval_rate: float = 0.05
    max_gap_steps: float = 1_000.0
    daily_bins: int = 288
    weekly_bins: int = 168
    bins_after_points: int = 8
    season_rate: float = 0.15
    level_rate: float = 0.003
    offset_rate: float = 0.001
    error_rate: float = 1.0 / 128.0
    min_error_points: int = 16
    scale_after_points: int = 100
    tail_lo: float = -3.8125
    tail_step: float = 0.375
    tail_bins: int = 62
    tail_window: float = 0.3
    tail_memory: float = 5000.0
    tail_min_count: float = 30.0
    tail_beyond_log10: float = 1.0
    stuck_beyond_log10: float = 0.0
    density_rate: float = 0.1
    density_cap: float = 8.0
    density_lo: float = -5.8125
    stuck_min_run: int = 5
    excursion_odds: float = 100.0
    score_log10_full: float = 12.0
    day_power: float = 0.25
    onset_decay: float = 0.99
    warmup_points: int = 100


class Histogram:
    """Decayed survival counts of one feature: count[j] = (decayed) values that reached edge j."""

    def __init__(self, cfg: Cfg, lowest: float) -> None:
        self.cfg = cfg
        self.lowest = lowest
        self.count = [F(0.0)] * cfg.tail_bins
        self.total = F(0.0)

    def position(self, v: np.float32) -> np.float32:
        return F((v - F(self.lowest)) / F(self.cfg.tail_step))

    def log10_tail(self, v: np.float32, beyond: float) -> np.float32:
        """log10 of the conservative empirical P(V >= v): every past value in v's bin counts."""
        k = self.cfg.tail_bins
        pos = self.position(v)
        if pos < 0:  # below the grid: every past value is at least as large
            num = F(np.log10(self.total + F(0.5)))
        else:
            b = math.floor(min(pos, F(k - 1)))
            num = F(np.log10(self.count[b] + F(0.5)))
            upper = min(b + 1, k - 1)
            if self.count[upper] < 0.5 or pos > k - 1:
                # past the record: the tail keeps falling by `beyond` per edge step
                num = F(num - F(max(pos - F(b), F(0.0))) * F(beyond))
                if self.count[b] < 0.5:
                    record = -1
                    for j in range(k):
                        if self.count[j] >= 0.5:
                            record = j
                    num = F(D(num) - D(b - max(record, 0)) * D(F(beyond)))
        return F(min(num - F(np.log10(self.total + F(1.0))), F(0.0)))

    def add(self, v: np.float32) -> None:
        k = self.cfg.tail_bins
        pos = self.position(v)
        reached = 0 if math.isnan(pos) else math.floor(min(max(pos, -1.0), k - 1)) + 1
        for j in range(reached):
            self.count[j] = F(self.count[j] + F(1.0))
        self.total = F(self.total + F(1.0))

    def add_by_edges(self, v: np.float32) -> None:
        """Count ``v`` at every edge it reaches, comparing with each edge in turn."""
        for j in range(self.cfg.tail_bins):
            if v >= F(self.lowest + self.cfg.tail_step * j):
                self.count[j] = F(self.count[j] + F(1.0))
        self.total = F(self.total + F(1.0))

    def forget(self) -> None:
        g = F((1.0 - 1.0 / self.cfg.tail_memory) ** LAZY)
        self.count = [F(c * g) for c in self.count]
        self.total = F(self.total * g)


class LumpHistogram(Histogram):
    """Decayed histogram of one feature's values: per edge j the (decayed) number of values that
    reached it, and per bin the (decayed) sum of its values' positions inside the bin, so each
    bin's values can be taken to sit at their mean position (a lump)."""

    def __init__(self, cfg: Cfg, lowest: float) -> None:
        super().__init__(cfg, lowest)
        self.sums = [F(0.0)] * cfg.tail_bins

    def lumps(self) -> list[tuple[float, float]]:
        """(weight, position) of each non-empty bin's lump; the top bin is open above."""
        k = self.cfg.tail_bins
        out = []
        for j in range(k):
            above = self.count[j + 1] if j + 1 < k else F(0.0)
            c = F(self.count[j] - above)
            if c > 0:
                out.append((float(c), j + float(self.sums[j]) / float(c)))
        return out

    def lumped_log10_tail(self, v: np.float32) -> np.float32:
        """log10 of (past values at least as large as v, each counted by the share of the window
        [v - w, v] below its lump + 1/2) / (total + 1); beyond the record it keeps falling."""
        c = self.cfg
        w = c.tail_window / c.tail_step
        y1 = float(self.position(v))
        y0 = y1 - w
        # below the lowest edge every past value counts; above it, each lump up to its position
        covered = max(0.0, min(y1, 0.0) - y0) * float(self.total)
        top = c.tail_bins - 1
        for weight, where in self.lumps():
            if where < top:
                covered += weight * max(0.0, min(where, max(y1, 0.0)) - max(y0, 0.0))
                continue
            # the open top bin: an exponential tail above its edge with the values' mean distance
            mean = where - top
            covered += weight * max(0.0, min(float(top), max(y1, 0.0)) - max(y0, 0.0))
            a, b = max(y0, top) - top, max(y1, top) - top
            if mean > 0:
                covered += weight * mean * (math.exp(-a / mean) - math.exp(-b / mean))
        est = covered / w
        out = math.log10((est + 0.5) / (float(self.total) + 1.0))
        if est < 0.5:  # beyond the record: from the lump of the last edge still counted
            k = c.tail_bins
            record = 0
            for j in range(k):
                if self.count[j] >= 0.5:
                    record = j
            above = float(self.count[record + 1]) if record + 1 < k else 0.0
            weight = float(self.count[record]) - above
            lump = record + (float(self.sums[record]) / weight if weight > 0 else 0.0)
            if record == k - 1:  # where the top bin's exponential tail falls to 1/2 a value
                lump = record + (lump - record) * math.log(max(2.0 * weight, 1.0))
            out -= max(y1 - w / 2 - lump, 0.0) * c.tail_step * c.tail_beyond_log10
        return F(min(out, 0.0))

    def add(self, v: np.float32) -> None:
        super().add(v)
        k = self.cfg.tail_bins
        pos = self.position(v)
        reached = 0 if math.isnan(pos) else math.floor(min(max(pos, -1.0), k - 1)) + 1
        if reached > 0:  # its place in its bin (in the open top bin: its distance from the top edge)
            place = min(F(pos - F(reached - 1)), F(k))  # (k bins past the top at most)
            self.sums[reached - 1] = F(self.sums[reached - 1] + place)

    def forget(self) -> None:
        super().forget()
        g = F((1.0 - 1.0 / self.cfg.tail_memory) ** LAZY)
        self.sums = [F(x * g) for x in self.sums]


class Series:
    """Everything the detector remembers about one series."""

    def __init__(self, cfg: Cfg) -> None:
        self.cfg = cfg
        self.n = 0
        self.x_ref = 0.0
        self.t_last = math.nan
        self.interval = F(0.0)
        self.last = F(0.0)
        self.mean = F(0.0)
        self.off_d = F(0.0)
        self.off_w = F(0.0)
        self.prev_d = F(0.0)
        self.prev_w = F(0.0)
        self.err = [F(0.0)] * 6
        self.err_n = [0] * 6
        self.peak = F(0.0)
        self.unit_mae = F(0.0)
        self.density = F(0.0)
        self.run = 0
        self.ex_run = 0
        self.season_t0 = math.nan
        self.bins_d = 0
        self.bins_w = 0
        self.daily = [F(0.0)] * cfg.daily_bins
        self.weekly = [F(0.0)] * cfg.weekly_bins
        lows = (
            cfg.tail_lo,
            cfg.tail_lo,
            cfg.tail_lo,
            cfg.density_lo,
        )  # point, level, seasonal level, density
        self.hists = [LumpHistogram(cfg, lo) for lo in lows]
        self.runs = Histogram(cfg, 0.0)
        self.excursions = Histogram(cfg, 0.0)


def _ewma_weight(k: np.float32, per_interval: float) -> np.float32:
    """Weight of a new value after k elapsed intervals: 1 - (1 - rate)^k."""
    return F(-math.expm1(D(k) * math.log1p(-per_interval)))


def _bin(t: float, period: float, bins: int, width: int) -> int:
    b = math.floor(D(math.fmod(t, period) if t >= 0 else t % period) * D(F(bins) / F(period)))
    return min(max(b, 0), width - 1)


def score_point(s: Series, t: float, x: float) -> float:
    """Score one finite observation and learn from it."""
    c = s.cfg
    first = s.n == 0
    if first:
        s.x_ref = x
    xr = F(x - s.x_ref)

    # typical sampling interval and elapsed intervals k
    dt = 0.0 if first else t - s.t_last
    if not first and dt > 0:
        if s.interval > 0:
            ratio = dt / D(s.interval)
            s.interval = F(D(s.interval) * math.exp(c.interval_rate * min(max(math.log(ratio), -1.0), 1.0)))
        else:
            s.interval = F(dt)
    k = F(min(max(dt / D(s.interval if s.interval > 0 else F(1.0)), 1.0), c.max_gap_steps))

    # seasonal profiles: bin counts fixed after a few points
    if s.n == c.bins_after_points and s.interval > 0:
        s.season_t0 = t
        iv = max(s.interval, F(1e-3))
        s.bins_d = int(min(max(math.floor(F(F(DAY) / iv)), 1), c.daily_bins))
        s.bins_w = int(min(max(math.floor(F(F(WEEK) / iv)), 1), c.weekly_bins))
    learning = s.bins_d > 0
    since = t - s.season_t0 if learning else -1.0
    i_d = _bin(t, DAY, s.bins_d, c.daily_bins)
    i_w = _bin(t, WEEK, s.bins_w, c.weekly_bins)
    pd = s.daily[i_d]
    pw = F(pd + s.weekly[i_w])
    preds = [
        s.last,
        s.mean,
        F(pd + s.off_d),
        F(pw + s.off_w),
        F(s.last + F(pd - s.prev_d)),
        F(s.last + F(pw - s.prev_w)),
    ]
    day_ok, week_ok = since >= DAY, since >= WEEK
    defined = [not first, not first, day_ok, week_ok, day_ok, week_ok]
    trusted = [not first, not first, since >= 2 * DAY, since >= 2 * WEEK, since >= 2 * DAY, since >= 2 * WEEK]
    usable = [trusted[p] and s.err_n[p] >= c.min_error_points for p in range(6)]
    abs_err = [F(abs(xr - preds[p])) for p in range(6)]

    def best(allowed: list[bool]) -> int:
        pick, lowest = 0, math.inf
        for p in range(6):
            if allowed[p] and s.err[p] < lowest:
                pick, lowest = p, s.err[p]
        return pick

    p_best = best(usable)
    p_base = best([usable[p] and BASELINE[p] for p in range(6)])
    any_seasonal = any(usable[p] and SEASONAL[p] for p in range(6))
    p_seas = best([usable[p] and SEASONAL[p] for p in range(6)])
    tiny = F(D(F(1e-7)) * (abs(s.x_ref) + abs(D(s.mean))) + D(F(1e-30)))

    # the unit of surprise: the slow mean's error, fixed once
    if s.unit_mae == 0 and s.n >= c.scale_after_points and s.err[1] > 0:
        s.unit_mae = s.err[1]
    unit = F(F(s.unit_mae * F(math.sqrt(math.pi / 2.0))) + tiny)
    widen = F(np.sqrt(min(k, F(100.0)))) if EXTRAPOLATING[p_best] else F(1.0)
    f_point = F(np.log2(F(abs_err[p_best] / F(unit * widen)) + F(1e-6)))
    # the level: residual from the plain mean, and from the best seasonal profile, each judged
    # against a history of its own kind of residual
    f_plain = F(np.log2(F(abs_err[1] / unit) + F(1e-6)))
    f_seas = F(np.log2(F(abs_err[p_seas] / unit) + F(1e-6)))
    tracked = usable[p_best] and s.unit_mae > 0

    h_point, h_plain, h_seas, h_dens = s.hists

    def tail(h: LumpHistogram, v: np.float32) -> np.float32:
        return h.lumped_log10_tail(v) if h.total >= c.tail_min_count else F(0.0)

    lp = tail(h_point, f_point)
    ll = tail(h_seas, f_seas) if SEASONAL[p_base] and any_seasonal else tail(h_plain, f_plain)
    if tracked:
        surprise = min(-min(lp, ll), F(c.density_cap))
        s.density = F(s.density + F(F(c.density_rate) * F(surprise - s.density)))
    f_dens = F(np.log2(s.density + F(1e-6)))
    ld = tail(h_dens, f_dens)
    if tracked:
        h_point.add(f_point)
        h_plain.add(f_plain)
        if any_seasonal:
            h_seas.add(f_seas)
        h_dens.add(f_dens)
    if s.n % LAZY == LAZY - 1:
        for h in s.hists:
            h.forget()

    # stuck: how long is this run of repeats, against the runs this series has finished
    repeat = not first and abs(xr - s.last) <= tiny
    runs = s.runs
    ls = F(0.0)
    if repeat:
        length = s.run + 1
        if length >= c.stuck_min_run:
            ls = runs.log10_tail(F(np.log2(F(length) + F(1.0))), c.stuck_beyond_log10)
    elif not first:
        runs.add_by_edges(F(np.log2(F(s.run) + F(1.0))))  # a finished run (length 0 reaches edge 0 only)
    if s.n % LAZY == LAZY - 1:
        runs.forget()
    s.run = s.run + 1 if repeat else 0

    # excursion: how long the level has stayed in its 1/odds tail, against finished excursions
    away = tracked and ll <= F(-math.log10(c.excursion_odds))
    lx = F(0.0)
    if away:
        lx = s.excursions.log10_tail(F(np.log2(F(s.ex_run + 1) + F(1.0))), c.tail_beyond_log10 * c.tail_step)
    elif tracked:
        s.excursions.add_by_edges(F(np.log2(F(s.ex_run) + F(1.0))))
    if s.n % LAZY == LAZY - 1:
        s.excursions.forget()
    s.ex_run = s.ex_run + 1 if away else 0

    # combine: Bonferroni over five tests, partly per day; onset only
    log10p = min(lp, ll, ld, ls, lx)
    per_day = max(F(DAY) / max(s.interval, F(1.0)), F(1.0))
    log10p = F(log10p + F(F(c.day_power) * F(np.log10(per_day))))
    raw = F(min(max(F(-F(log10p + F(math.log10(5.0))) / F(c.score_log10_full)), F(0.0)), F(1.0)))
    if s.n < c.warmup_points or not tracked:
        raw = F(0.0)
    score = raw if raw > s.peak else F(0.0)
    s.peak = max(F(s.peak * F(c.onset_decay)), raw)

    # learn: error trackers, level, offsets, profiles
    for p in range(6):
        if defined[p]:
            s.err_n[p] += 1
            a = max(F(c.error_rate), F(F(1.0) / F(max(s.err_n[p], 1))))
            s.err[p] = F(s.err[p] + F(a * F(abs_err[p] - s.err[p])))
    fresh = F(F(1.0) / F(s.n + 1))
    a_lvl = max(_ewma_weight(k, c.level_rate), fresh)
    s.mean = F(s.mean + F(a_lvl * F(xr - s.mean)))
    a_off = max(_ewma_weight(k, c.offset_rate), fresh)
    s.off_d = F(s.off_d + F(a_off * F(F(xr - pd) - s.off_d))) if day_ok else F(0.0)
    s.off_w = F(s.off_w + F(a_off * F(F(xr - pw) - s.off_w))) if week_ok else F(0.0)
    s.prev_d, s.prev_w = pd, pw
    if learning:
        for table, i, resid, ok, bins, period in (
            (s.daily, i_d, F(xr - pd), day_ok, s.bins_d, DAY),
            (s.weekly, i_w, F(xr - pw), week_ok, s.bins_w, WEEK),
        ):
            per_bin = max(F(F(F(period) / max(F(bins), F(1.0))) / max(s.interval, F(1e-3))), F(1.0))
            a = F(F(c.season_rate) / per_bin) if ok else F(1.0)
            table[i] = F(table[i] + F(a * resid))
    s.last = xr
    s.t_last = t
    s.n += 1
    return float(score)


def score_many(times: np.ndarray, values: np.ndarray, cfg: Cfg | None = None) -> np.ndarray:
    """Scores of ``(N, T)`` series, each alone, point by point (NaN/inf values: NaN, skipped)."""
    out = np.full(values.shape, np.nan, dtype=np.float32)
    for i in range(values.shape[0]):
        s = Series(cfg or Cfg())
        for j in range(values.shape[1]):
            t, x = float(times[i, j]), float(values[i, j])
            if math.isfinite(t) and math.isfinite(x):
                out[i, j] = score_point(s, t, x)
    return out


# --- farm alerts (analytics.anomaly.farm), one series at a time ---------------------------------


def rain_context(times: list[float], rain: list[float], after_s: float = 7200.0) -> list[bool]:
    out, last = [], -math.inf
    for t, r in zip(times, rain, strict=True):
        if r == r and r > 0:  # not NaN
            last = t
        out.append(t - last <= after_s)
    return out


def rollover_context(
    times: list[float], values: list[float], utc_offset_s: float = 0.0, within_s: float = 1800.0
) -> list[bool]:
    out, fell_on_day = [], None
    for j, (t, x) in enumerate(zip(times, values, strict=True)):
        local = t + utc_offset_s
        day = math.floor(local / DAY)
        near = local - day * DAY < within_s
        if near and j > 0 and x < values[j - 1]:
            fell_on_day = day
        out.append(near and fell_on_day == day)
    return out


def alerts(scores: list[float], level: float, qc: list[bool], explained: list[bool]) -> list[bool]:
    out = []
    for s, q, e in zip(scores, qc, explained, strict=True):
        out.append(q or (s == s and s >= level and not e))
    return out


def stuck_alarms(
    times: list[float],
    values: list[float],
    factor: float = 3.0,
    min_s: float = 3600.0,
    memory_s: float = 7 * DAY,
    warmup_s: float = DAY,
) -> list[bool]:
    out: list[bool] = []
    last = None  # the latest reading (a missing one keeps it)
    start = prev_t = first = 0.0
    done: list[tuple[float, float]] = []  # (end time, length) of finished flat stretches
    for t, x in zip(times, values, strict=True):
        ok = x == x
        v = x if ok else last
        if v is None:
            out.append(False)
            continue
        if first == 0.0 and ok:
            first = t
        same = last is not None and v == last
        if not same:
            if last is not None and prev_t - start > 0:
                done.append((prev_t, prev_t - start))
            start = t
        record = max((d * 2.0 ** (-(t - end) / memory_s) for end, d in done), default=0.0)
        out.append(ok and same and t - start >= max(factor * record, min_s) and t - first >= warmup_s)
        last, prev_t = v, t
    return out


def drift_alarms(
    times: list[float],
    values: list[float],
    k: float = 8.0,
    smooth_s: float = 3600.0,
    memory_s: float = 7 * DAY,
    days: int = 3,
    warmup_s: float = DAY,
) -> list[bool]:
    def before(j: int, lag: float) -> float:
        i = j
        while i >= 0 and times[i] > times[j] - lag:
            i -= 1
        if i < 0 or times[i] < times[j] - lag - smooth_s:
            return math.nan
        return values[i]

    out: list[bool] = []
    acc = size = 0.0
    seen = 0
    t_first = t_prev = 0.0
    on = False
    for j, (t, x) in enumerate(zip(times, values, strict=True)):
        refs = [before(j, d * DAY) for d in range(1, days + 1)]
        if x != x or any(r != r for r in refs):
            out.append(False)
            continue
        refs.sort()
        mid = len(refs) // 2
        median = refs[mid] if len(refs) % 2 else (refs[mid - 1] + refs[mid]) / 2
        r = x - median
        if seen == 0:
            acc, t_first, dt = r, t, 0.0
        else:
            dt = t - t_prev
            acc += -math.expm1(-dt / smooth_s) * (r - acc)
        limit = (0.5 * k if on else k) * size
        on = t - t_first >= warmup_s and size > 0 and abs(acc) > limit
        out.append(on)
        size += max(-math.expm1(-dt / memory_s), 1.0 / (seen + 1)) * (abs(acc) - size)
        seen += 1
        t_prev = t
    return out
