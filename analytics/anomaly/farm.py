"""From anomaly scores to farm alerts: QC flags, physical context, one alert level.

The detector scores how surprising a reading is for its own series. A farm alert needs more:

* **QC first.** What sensor QC already flags (``analytics.qc``: out of the sensor's range, a
  flat line, ...) is an alert of its own; the detector does not have to find it again.
* **Physical context.** Some surprises have a known cause on the same farm and are not faults:
  soil moisture jumping while it rains (:func:`rain_context`), a daily counter rolling over to
  zero at midnight (:func:`rollover_context`). Readings explained by context raise no alert.
* **One alert level** (:data:`ALERT_LEVEL`) on the score for everything else.

All functions are vectorised over ``(N, T)`` arrays (series x time) and causal: whether a
reading alerts depends on it and earlier readings only.
"""

from __future__ import annotations

import numpy as np

from analytics.qc import FAIL, SUSPECT, QcResult

#: the documented alert level on the anomaly score (docs/analytics.md, "Farm alerts")
ALERT_LEVEL = 0.35
_DAY = 86_400.0


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
