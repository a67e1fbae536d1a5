"""The array layout every QC test takes, and the neighbour look-ups they share.

Layout: ``values`` is ``(n_points,)`` for one series or ``(n_series, n_points)`` for many;
``times`` (Unix seconds, float) has the same shape, or is ``(n_points,)`` shared by every
series. A NaN value is a missing reading (flag 9). Ragged collections are padded at the end
with NaN times and NaN values (``pad_ragged``); padding is flagged 9 too. Within a series the
finite times must strictly increase; sampling may be irregular.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Series2D:
    """Normalised input: 2-D times and values, the validity mask and the caller's shape."""

    t: F64  # (S, N), padding filled with increasing times past the row's end
    v: F64  # (S, N)
    valid: NDArray[np.bool_]  # finite value and real (non-padding) time
    padding: NDArray[np.bool_]
    shape: tuple[int, ...]  # shape to give results back in


def normalise(times: ArrayLike, values: ArrayLike) -> Series2D:
    """Check and reshape ``(times, values)`` to 2-D; raise ``ValueError`` on a bad layout."""
    v = np.asarray(values, dtype=np.float64)
    t = np.asarray(times, dtype=np.float64)
    if v.ndim not in (1, 2):
        raise ValueError(f"values must be 1-D or 2-D (series, points), got shape {v.shape}")
    shape = v.shape
    v2 = v.reshape(1, -1) if v.ndim == 1 else v
    if t.shape == v2.shape[-1:]:
        t2 = np.broadcast_to(t, v2.shape)
    elif t.shape == shape:
        t2 = t.reshape(v2.shape)
    else:
        raise ValueError(f"times shape {t.shape} fits neither values {shape} nor its last axis")
    padding = np.isnan(t2)
    if np.isinf(t2).any():
        raise ValueError("times must be finite (NaN marks padding at the end of a series)")
    # padding only after the last real time of each row
    n = v2.shape[1]
    real = ~padding
    if n == 0:
        last_real = np.full(v2.shape[0], -1)
    else:
        last_real = np.where(real.any(axis=1), n - 1 - np.argmax(real[:, ::-1], axis=1), -1)
    if (padding & (np.arange(n) <= last_real[:, None])).any():
        raise ValueError("NaN times (padding) are allowed only at the end of a series")
    with np.errstate(invalid="ignore"):
        steps = np.diff(t2, axis=1)
    if (steps[~np.isnan(steps)] <= 0).any():
        raise ValueError("times must strictly increase within each series")
    tf = np.array(t2, dtype=np.float64)
    if padding.any():
        # Fill padding with times past the row's end so per-row searches stay sorted.
        row_end = np.where(last_real >= 0, np.nanmax(np.where(real, t2, -np.inf), axis=1), 0.0)
        k = np.arange(n) - last_real[:, None]
        tf = np.where(padding, row_end[:, None] + k * 1.0, tf)
    valid = np.isfinite(v2) & ~padding
    return Series2D(tf, v2, valid, padding, shape)


def pad_ragged(series: Sequence[tuple[ArrayLike, ArrayLike]]) -> tuple[F64, F64]:
    """Stack ``[(times, values), ...]`` of different lengths into NaN-padded 2-D arrays."""
    n = max((len(np.atleast_1d(np.asarray(t))) for t, _ in series), default=0)
    t_out = np.full((len(series), n), np.nan)
    v_out = np.full((len(series), n), np.nan)
    for i, (t, v) in enumerate(series):
        ta = np.atleast_1d(np.asarray(t, dtype=np.float64))
        va = np.atleast_1d(np.asarray(v, dtype=np.float64))
        if ta.shape != va.shape or ta.ndim != 1:
            raise ValueError(f"series {i}: times and values must be 1-D of equal length")
        t_out[i, : len(ta)] = ta
        v_out[i, : len(va)] = va
    return t_out, v_out


def prev_valid(valid: NDArray[np.bool_]) -> I64:
    """Index of the previous valid point in the row (-1 if none), for every position."""
    n = valid.shape[1]
    idx = np.where(valid, np.arange(n), -1)
    last = np.maximum.accumulate(idx, axis=1)
    out = np.full(valid.shape, -1, dtype=np.int64)
    out[:, 1:] = last[:, :-1]
    return out


def next_valid(valid: NDArray[np.bool_]) -> I64:
    """Index of the next valid point in the row (-1 if none), for every position."""
    n = valid.shape[1]
    idx = np.where(valid, np.arange(n), n)
    nxt = np.minimum.accumulate(idx[:, ::-1], axis=1)[:, ::-1]
    out = np.full(valid.shape, n, dtype=np.int64)
    out[:, :-1] = nxt[:, 1:]
    return np.where(out >= n, -1, out)


def take_rows(a: NDArray[np.float64], idx: I64) -> F64:
    """``a[row, idx[row, j]]`` for every position; NaN where ``idx`` is -1."""
    safe = np.clip(idx, 0, a.shape[1] - 1)
    out = np.take_along_axis(a, safe, axis=1)
    return np.where(idx < 0, np.nan, out)


def search_rows(t: F64, targets: F64) -> I64:
    """Per row, the index of the last time ``<= target`` (-1 if none): a row-wise searchsorted.

    Rows are laid end to end on one axis, each shifted past the previous one's span, so a single
    ``np.searchsorted`` serves every row.
    """
    s, n = t.shape
    if n == 0:
        return np.zeros(t.shape, dtype=np.int64)
    t0 = t[:, :1]
    rel_t = t - t0
    rel_q = targets - t0
    span = float(max(np.max(rel_t), 0.0)) + float(np.max(np.abs(rel_q))) + 1.0
    offs = (np.arange(s, dtype=np.float64) * 3.0 * span)[:, None]
    flat_t = (rel_t + offs).ravel()
    q = np.clip(rel_q, -span, span) + offs
    pos = np.searchsorted(flat_t, q.ravel(), side="right").reshape(s, n) - 1
    local = pos - (np.arange(s) * n)[:, None]
    return np.where(local < 0, -1, np.minimum(local, n - 1)).astype(np.int64)


def restore(flags: NDArray[np.uint8], shape: tuple[int, ...]) -> NDArray[np.uint8]:
    return flags.reshape(shape)
