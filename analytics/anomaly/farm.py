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


def alerts(
    scores: np.ndarray,
    level: float = ALERT_LEVEL,
    qc: np.ndarray | None = None,
    explained: np.ndarray | None = None,
) -> np.ndarray:
    """Alerting readings: QC alarms (``qc``, boolean), and scores at or above ``level`` that no
    QC alarm already covers and no physical context (``explained``, boolean) explains."""
    s = np.nan_to_num(np.asarray(scores, dtype=np.float64))
    hit = s >= level
    if explained is not None:
        hit &= ~explained
    if qc is not None:
        hit |= qc
    out: np.ndarray = hit
    return out
