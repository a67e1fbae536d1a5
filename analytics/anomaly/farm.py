"""From anomaly scores to farm alerts: QC flags, physical context, one alert level.

The detector scores how surprising a reading is for its own series. A farm alert needs more:

* **QC first.** What sensor QC already flags (``analytics.qc``: out of the sensor's range, a
  flat line, ...) is an alert of its own; the detector does not have to find it again.
* **Physical context.** Some surprises have a known cause on the same farm and are not faults:
  soil moisture jumping while it rains (:func:`rain_context`), a daily counter rolling over to
  zero at midnight (:func:`rollover_context`). Readings explained by context raise no alert.
* **Faults QC's fixed limits miss.** A probe stuck for hours is judged against its own finished
  flat stretches (:func:`stuck_alarms`), not against a fixed time per metric; a slow drift by a
  day-over-day slow-trend test on metrics that follow the same daily course every day
  (:func:`drift_alarms`, :data:`DRIFT_METRICS`). Both count as QC-like alarms (``qc`` of
  :func:`alerts`).
* **One alert level** (:data:`ALERT_LEVEL`) on the score for everything else.

All functions are vectorised over ``(N, T)`` arrays (series x time) and causal: whether a
reading alerts depends on it and earlier readings only.
"""

from __future__ import annotations

import numpy as np

from analytics.qc import FAIL, SUSPECT, QcResult

#: the documented alert level on the anomaly score (docs/analytics.md, "Farm alerts"); 0.38 since
#: the stuck and drift rules (0.35 before): chosen on development seeds 0-10
ALERT_LEVEL = 0.38
_DAY = 86_400.0
#: metrics that follow the same daily course day after day, so that a reading far from the same
#: time of the previous days is news: water quality, barn air, gases. Not soil moisture (rain and
#: irrigation move it), counters (drinking water since midnight) or rain.
DRIFT_METRICS = frozenset({"ph", "do_mgl", "air_t", "water_t", "nh3_ppm", "co2_ppm", "h2s_ppm", "air_rh"})


def qc_alarms(qc: QcResult) -> np.ndarray:
    """Readings QC calls faulty: any test's FAIL, or SUSPECT from the gross-range or flat-line
    test (a reading outside the operator range, a probe that stopped moving)."""
    out: np.ndarray = ((qc.aggregate == FAIL) | (qc.gross_range == SUSPECT) | (qc.flat_line == SUSPECT)) & (
        qc.aggregate != np.uint8(9)
    )
    return out


def rain_context(times: np.ndarray, rain: np.ndarray, after_s: float = 2 * 3600.0) -> np.ndarray:
    """Readings taken while it rains on the farm or up to ``after_s`` after the last rain.

    ``times`` and ``rain`` (rain per interval, NaN missing) are ``(T,)`` or ``(N, T)``; the
    result has their shape. Used for the farm's soil-moisture series, which jump with rain.
    """
    t = np.atleast_2d(np.asarray(times, dtype=np.float64))
    r = np.atleast_2d(np.asarray(rain, dtype=np.float64))
    wet = np.nan_to_num(r) > 0
    last = np.where(wet, t, -np.inf)
    last_rain = np.maximum.accumulate(last, axis=1)
    out: np.ndarray = t - last_rain <= after_s
    return out.reshape(np.shape(times))


def rollover_context(
    times: np.ndarray, values: np.ndarray, utc_offset_s: float = 0.0, within_s: float = 1800.0
) -> np.ndarray:
    """Readings of a daily counter from its rollover (the value falls in the first ``within_s``
    after local midnight) to the end of that window: the fall and what follows it are the
    counter's reset, not a fault. ``(T,)`` or ``(N, T)`` in, the same shape out."""
    t = np.atleast_2d(np.asarray(times, dtype=np.float64))
    x = np.atleast_2d(np.asarray(values, dtype=np.float64))
    since_midnight = np.mod(t + utc_offset_s, _DAY)
    near = since_midnight < within_s
    prev = np.concatenate([np.full((x.shape[0], 1), np.nan), x[:, :-1]], axis=1)
    fell = near & (x < prev)
    day = np.floor((t + utc_offset_s) / _DAY)
    # the day of the latest fall so far; a reading is explained while it is near that midnight
    fall_day = np.maximum.accumulate(np.where(fell, day, -np.inf), axis=1)
    out: np.ndarray = near & (fall_day == day)
    return out.reshape(np.shape(times))


def rain_context_at(
    times: np.ndarray, rain_times: np.ndarray, rain: np.ndarray, after_s: float = 2 * 3600.0
) -> np.ndarray:
    """:func:`rain_context` for readings ``times`` (``(T,)``) of one series with the farm's water
    inputs on their own timeline (``rain_times``, ``rain``; e.g. another node's rain gauge)."""
    t = np.asarray(times, dtype=np.float64)
    rt = np.ravel(np.asarray(rain_times, dtype=np.float64))
    merged_t = np.concatenate([rt, t])
    merged_r = np.concatenate([np.ravel(np.asarray(rain, dtype=np.float64)), np.zeros(len(t))])
    order = np.argsort(merged_t, kind="stable")  # a reading after a gauge reading at the same time
    ctx = np.empty(len(merged_t), dtype=bool)
    ctx[order] = rain_context(merged_t[order], merged_r[order], after_s)
    out: np.ndarray = ctx[len(rt) :]
    return out


#: metrics explained by water coming in on the farm (rain, irrigation)
WATERED = frozenset({"soil_vwc"})
#: weather: context for the other series, never a fault of its own
WEATHER = frozenset({"rain_mm"})
#: daily counters that roll over at local midnight
DAILY_COUNTERS = frozenset({"water_l"})


def explained(
    metric: str,
    times: np.ndarray,
    values: np.ndarray,
    *,
    rain_times: np.ndarray | None = None,
    rain: np.ndarray | None = None,
    utc_offset_s: float = 0.0,
) -> np.ndarray:
    """Readings of one series of ``metric`` (``(T,)``) that a known farm cause explains: soil
    moisture while water comes in (``rain_times``/``rain``: the farm's rain and irrigation, any
    timeline) and for two hours after, a rain gauge always (weather), a daily counter at its
    midnight rollover. Other metrics: nothing is explained."""
    t = np.asarray(times, dtype=np.float64)
    if metric in WEATHER:
        return np.ones(t.shape, dtype=bool)
    if metric in WATERED and rain_times is not None and rain is not None:
        return rain_context_at(t, rain_times, rain)
    if metric in DAILY_COUNTERS:
        return rollover_context(t, values, utc_offset_s)
    return np.zeros(t.shape, dtype=bool)


def farm_scores(
    scores: np.ndarray, qc: np.ndarray | None = None, explained: np.ndarray | None = None
) -> np.ndarray:
    """The score a farm alert compares with its level: 1 where QC alarms (``qc``), 0 where context
    explains the reading (``explained``) and QC does not, else the detector's score (NaN: 0).
    For a level in (0, 1], ``farm_scores(...) >= level`` is :func:`alerts`."""
    s = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=0.0)
    if explained is not None:
        s = np.where(explained, 0.0, s)
    if qc is not None:
        s = np.where(qc, 1.0, s)
    return s


def alerts(
    scores: np.ndarray,
    level: float = ALERT_LEVEL,
    qc: np.ndarray | None = None,
    explained: np.ndarray | None = None,
) -> np.ndarray:
    """Alerting readings: QC alarms (``qc``, boolean), and scores at or above ``level`` (in (0, 1])
    that no QC alarm already covers and no physical context (``explained``, boolean) explains."""
    if not 0.0 < level <= 1.0:
        raise ValueError(f"alert level must be in (0, 1], got {level}")
    out: np.ndarray = farm_scores(scores, qc, explained) >= level
    return out


def _carry_forward(x: np.ndarray) -> np.ndarray:
    """``(N, T)``: each missing value replaced by the latest earlier reading of its row."""
    idx = np.where(np.isfinite(x), np.arange(x.shape[1]), 0)
    np.maximum.accumulate(idx, axis=1, out=idx)
    out: np.ndarray = np.take_along_axis(x, idx, axis=1)
    return out


#: :func:`stuck_update`'s state per series, one row each: the last value (carried over missing
#: readings), the time its flat stretch began, the time of the last reading, the faded record
#: (``log2(length) + t_end / memory_s`` of the longest finished stretch), the first reading's time
STUCK_STATE = ("value", "start", "last", "record_key", "first")


def stuck_state(n: int) -> np.ndarray:
    """A fresh :func:`stuck_update` state for ``n`` series (nothing seen)."""
    out = np.full((n, len(STUCK_STATE)), np.nan)
    out[:, 3] = -np.inf
    return out


def stuck_alarms(times: np.ndarray, values: np.ndarray, **params: float) -> np.ndarray:
    """Readings of a probe that has repeated one value for longer than it ever does when healthy.

    A *flat stretch* is a run of identical readings (a missing reading neither ends nor starts
    one); its length is the time from its first to its current reading. A reading alarms while
    its stretch has lasted at least ``min_s`` and ``factor`` times the longest stretch the probe
    finished before, that record fading by half every ``memory_s``; not in the first
    ``warmup_s`` after the row's first reading. A soil probe whose readings sit still for up to
    an hour at night alarms after about three hours of one value, a probe that never repeats
    after ``min_s``, a quantised or idle one only when it holds far longer than it used to.
    QC's flat-line test (fixed per metric, 24 h for soil moisture) remains for a series that has
    never moved. ``(T,)`` or ``(N, T)`` in, the same shape out; causal (state per series: the
    stretch's start and the faded record; :func:`stuck_update` carries it from step to step).
    ``params``: :func:`stuck_update`'s ``factor`` (3), ``min_s`` (1 h), ``memory_s`` (7 days) and
    ``warmup_s`` (1 day).
    """
    t = np.atleast_2d(np.asarray(times, dtype=np.float64))
    raw = np.atleast_2d(np.asarray(values, dtype=np.float64))
    out = stuck_update(stuck_state(t.shape[0]), t, raw, **params)
    return out.reshape(np.shape(values))


def stuck_update(
    state: np.ndarray,
    times: np.ndarray,
    values: np.ndarray,
    factor: float = 3.0,
    min_s: float = 3600.0,
    memory_s: float = 7 * _DAY,
    warmup_s: float = _DAY,
) -> np.ndarray:
    """:func:`stuck_alarms` of the next readings of ``N`` series, ``(N, T)``, after those
    ``state`` (``(N, 5)``, :data:`STUCK_STATE`, updated in place) has seen: the alarms are those
    of the whole history at once. A row shorter than ``T`` is padded at its end with its last time
    and NaN values (they change nothing)."""
    t = np.asarray(times, dtype=np.float64)
    raw = np.asarray(values, dtype=np.float64)
    n, length = raw.shape
    x = _carry_forward(np.concatenate([state[:, :1], raw], axis=1))
    prev, x = x[:, :-1], x[:, 1:]
    same = x == prev  # NaN before the first reading: that reading starts a stretch
    began = np.maximum.accumulate(np.where(same, -1, np.arange(length)), axis=1)
    start = np.where(began >= 0, np.take_along_axis(t, np.maximum(began, 0), axis=1), state[:, 1:2])
    dur = t - start
    # a stretch finishes where a different value arrives; its length faded by 2^(-age/memory_s)
    # is kept as log2(length) + t_end/memory_s, so a running maximum gives the faded record
    with np.errstate(invalid="ignore"):
        ended = np.concatenate([np.nan_to_num(state[:, 2:3] - state[:, 1:2]), dur[:, :-1]], axis=1)
        finished = ~same & (ended > 0)
    key = np.full((n, length + 1), -np.inf)
    key[:, 0] = state[:, 3]
    key[:, 1:][finished] = np.log2(ended[finished]) + t[finished] / memory_s
    run = np.maximum.accumulate(key, axis=1)[:, 1:]
    record = np.exp2(run - t / memory_s)
    ok = np.isfinite(raw)
    seen = np.isfinite(state[:, 4])
    first = np.where(seen, state[:, 4], np.take_along_axis(t, np.argmax(ok, axis=1)[:, None], axis=1)[:, 0])
    with np.errstate(invalid="ignore"):
        out: np.ndarray = (
            ok & same & (dur >= np.maximum(factor * record, min_s)) & (t - first[:, None] >= warmup_s)
        )
    if length:
        state[:, 0] = x[:, -1]
        state[:, 1] = start[:, -1]
        state[:, 2] = t[:, -1]
        state[:, 3] = run[:, -1]
        state[:, 4] = np.where(seen | ok.any(axis=1), first, np.nan)
    return out


def _reading_before(
    t: np.ndarray, hist_t: np.ndarray, hist_v: np.ndarray, lag_s: float, within_s: float
) -> np.ndarray:
    """``(N, T)``: for each time of ``t``, the reading of its row's history at or just before
    ``t - lag_s``, NaN when there is none within ``within_s`` before that time (a gap)."""
    out = np.full(t.shape, np.nan)
    for i in range(t.shape[0]):
        h = hist_t[i]
        h = h[: np.count_nonzero(np.isfinite(h))]  # the history's NaN padding at its end
        j = np.searchsorted(h, t[i] - lag_s, side="right") - 1
        if not len(h):
            continue
        ok = (j >= 0) & (h[np.maximum(j, 0)] >= t[i] - lag_s - within_s)
        out[i, ok] = hist_v[i, j[ok]]
    return out


#: history the slow-trend test reads for each reading (the default ``days`` and ``smooth_s``)
DRIFT_HISTORY_S = 3 * _DAY + 3600.0


def drift_alarms(
    times: np.ndarray, values: np.ndarray, days: int = 3, smooth_s: float = 3600.0, **params: float
) -> np.ndarray:
    """A slow-trend test: readings that have moved away from the same time of the previous days.

    For a metric with the same daily course every day (:data:`DRIFT_METRICS`), the difference
    ``r`` of a reading from the median of the readings ``1 .. days`` days earlier (each at most
    ``smooth_s`` older than that time, else the reading is not tested) removes the daily cycle;
    the median ignores one unusual day, so yesterday's event does not echo today. ``r`` is
    smoothed over ``smooth_s`` (an exponential average in time), and the smoothed value is
    compared with its own typical size, the mean of its absolute value over ``memory_s``
    (updated after the test, so a point is judged by the past). A reading alarms when the
    smoothed difference exceeds ``k`` times that size, and the alarm holds until it falls below
    half of it (one alarm per drift, not a flicker). No alarm in the first ``warmup_s`` of
    tested readings. A pH drift of 0.6 over 36 h alarms within a few hours; weather moves barn
    air by about a degree from day to day, and that sets its own typical size.

    ``(T,)`` or ``(N, T)`` in (non-decreasing times per row, NaN missing), the same shape out;
    causal: the state per series is the last ``days`` days of readings and four numbers.
    ``params``: :func:`drift_update`'s ``k`` (8), ``memory_s`` (7 days) and ``warmup_s`` (1 day).
    """
    t = np.atleast_2d(np.asarray(times, dtype=np.float64))
    x = np.atleast_2d(np.asarray(values, dtype=np.float64))
    r = drift_residuals(t, x, t, x, smooth_s, days)
    out = drift_update(drift_state(t.shape[0]), t, r, smooth_s=smooth_s, **params)
    return out.reshape(np.shape(values))


#: :func:`drift_update`'s state per series, one row each: the smoothed difference, its typical
#: size, the count of tested readings, the first and the last tested reading's time, alarm on (1)
DRIFT_STATE = ("smoothed", "size", "tested", "first", "last", "on")


def drift_state(n: int) -> np.ndarray:
    """A fresh :func:`drift_update` state for ``n`` series (nothing tested)."""
    out = np.zeros((n, len(DRIFT_STATE)))
    out[:, 3:5] = np.nan
    return out


def drift_residuals(
    times: np.ndarray,
    values: np.ndarray,
    hist_t: np.ndarray,
    hist_v: np.ndarray,
    smooth_s: float = 3600.0,
    days: int = 3,
) -> np.ndarray:
    """``(N, T)``: each reading less the median of the readings ``1 .. days`` days earlier in its
    row's history ``hist_t``/``hist_v`` (``(N, H)``, time order, NaN-padded at the end; it may
    include the readings themselves), each at most ``smooth_s`` older than that time; NaN where a
    reference is missing."""
    refs = np.stack([_reading_before(times, hist_t, hist_v, d * _DAY, smooth_s) for d in range(1, days + 1)])
    with np.errstate(invalid="ignore"):  # NaN when any reference (or the reading) is missing
        out: np.ndarray = values - np.median(refs, axis=0)
    return out


def drift_update(
    state: np.ndarray,
    times: np.ndarray,
    resid: np.ndarray,
    k: float = 8.0,
    smooth_s: float = 3600.0,
    memory_s: float = 7 * _DAY,
    warmup_s: float = _DAY,
) -> np.ndarray:
    """:func:`drift_alarms` of the next readings of ``N`` series from their residuals
    (:func:`drift_residuals`), after those ``state`` (``(N, 6)``, :data:`DRIFT_STATE`, updated in
    place) has seen: the alarms are those of the whole history at once."""
    t = np.asarray(times, dtype=np.float64)
    r = np.asarray(resid, dtype=np.float64)
    out = np.zeros(r.shape, dtype=bool)
    acc, size, seen, t_first, t_prev = (state[:, i].copy() for i in range(5))
    on = state[:, 5] > 0
    for j in range(r.shape[1]):
        ok = np.isfinite(r[:, j])
        if not ok.any():
            continue
        tj = t[:, j]
        dt = np.where(seen > 0, tj - t_prev, 0.0)
        a = np.where(seen > 0, -np.expm1(-dt / smooth_s), 1.0)
        acc = np.where(ok, acc + a * (np.nan_to_num(r[:, j]) - acc), acc)
        dev = np.abs(acc)
        t_first = np.where(ok & (seen == 0), tj, t_first)
        warm = ok & (tj - t_first >= warmup_s) & (size > 0)
        on = np.where(ok, warm & (dev > np.where(on, 0.5 * k, k) * size), on)
        out[:, j] = on & ok
        b = np.maximum(-np.expm1(-dt / memory_s), 1.0 / (seen + 1.0))
        size = np.where(ok, size + b * (dev - size), size)
        seen = seen + ok
        t_prev = np.where(ok, tj, t_prev)
    state[:, :5] = np.stack([acc, size, seen, t_first, t_prev], axis=1)
    state[:, 5] = on
    return out
