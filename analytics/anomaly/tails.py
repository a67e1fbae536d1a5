"""Tail probabilities of features against their own history: decayed histograms with bin means.

Each feature of each series keeps, on a fixed grid of ``log2`` edges, exponentially decayed
counts of how many past values reached each edge (survival counts) and, per bin, the decayed sum
of its values' positions inside the bin. Each bin's values are taken to sit at their mean
position (a lump), which is exact for a bin holding one value and never depends on where an edge
falls for an isolated value in a sparse tail. The top bin is open: its values are an exponential
tail in log2 (a Pareto tail in the values) with their count and mean.

The tail probability of a new value ``v`` is the share of past values at least as large as
``v``, each past value counted in part when it lies within a window of ``tail_window`` (log2)
below ``v`` (in full when at least ``v``, by the fraction of the window it covers otherwise):
(that count + 1/2) / (total + 1). The window makes a value barely above others not surprising,
by a margin that is a constant of its own instead of "wherever the bin edge happened to be"
(the previous read counted every value of ``v``'s bin as at least as large, so the margin was
0 to 1 step depending on the edge placement, docs/benchmarks.md, "State version 4"). Beyond the
largest value on record the probability keeps falling geometrically with the distance from it.

This is a streaming, bounded-memory empirical p-value (a conformal p-value with forgetting), so
calibration assumes no distribution: large values that are routine for a series (daily spikes,
quantised sensors) are not surprising when they recur.

The histograms of run lengths (stuck, excursion) are plain survival counts read at the lower edge
of a value's bin (:func:`exceedance_at`): run lengths are integers, their grid is fixed.
"""

from __future__ import annotations

import numpy as np

from analytics.anomaly.config import DetectorConfig
from analytics.anomaly.vec import vmax, vmin

_F32 = np.float32
_HALF = _F32(0.5)
_LOG10_E = _F32(1.0 / np.log(10.0))
_LOG2_E = _F32(1.0 / np.log(2.0))


def log10(x: np.ndarray) -> np.ndarray:
    """float32 log10 as ``ln(x) / ln(10)``: numpy's float32 ``log`` is vectorised with SIMD, its
    ``log10`` is not (10,000 values: 18 against 64 microseconds); within 2 float32 ulps."""
    out: np.ndarray = np.log(x) * _LOG10_E
    return out


def log2(x: np.ndarray) -> np.ndarray:
    """float32 log2 as ``ln(x) / ln(2)`` (10,000 values: 19 against 31 microseconds), for the
    value features (their histogram reads are continuous in the value, so an ulp moves a
    probability by as little); run lengths keep ``np.log2``, exact at their integer edges."""
    out: np.ndarray = np.log(x) * _LOG2_E
    return out


#: flat offsets of (series, feature) rows, cached per shape (the step runs on the same shapes)
_BASES: dict[tuple[int, ...], np.ndarray] = {}


def edges(cfg: DetectorConfig, lo_edge: float) -> np.ndarray:
    """log2 edges of a survival histogram starting at ``lo_edge``."""
    return (lo_edge + cfg.tail_step * np.arange(cfg.tail_bins)).astype(_F32)


#: histogram counts are forgotten in blocks: every LAZY points of a series its counts are
#: multiplied by (1 - 1/memory)**LAZY (each step touches 1/LAZY of the rows, not all of them)
LAZY = 64


def decay_due(n: np.ndarray) -> np.ndarray:
    """Series whose histograms are decayed at this point (it completes a block of LAZY points).

    Computed once per step from the point counts ``n`` before the step and shared by every
    histogram of the step. ``n - floor(n / LAZY) * LAZY`` is ``n mod LAZY`` exactly (LAZY is a
    power of two, so every operation is exact in float32) and 10x cheaper than ``np.mod``
    (0.055 -> 0.005 ms for 5,000 series).
    """
    due: np.ndarray = (n - np.floor(n * _F32(1.0 / LAZY)) * _F32(LAZY)) == LAZY - 1
    return due


def renormalise(
    surv: np.ndarray, total: np.ndarray, due: np.ndarray, cfg: DetectorConfig, sums: np.ndarray | None = None
) -> None:
    """Decay the rows of the series that complete a block of LAZY points with this one
    (``due``, from :func:`decay_due`): ``surv``, ``total`` and ``sums`` share their first axis."""
    if not due.any():
        return
    g = _F32((1.0 - 1.0 / cfg.tail_memory) ** LAZY)
    if due.all():  # series fed in lockstep from their start: in place, no gather/scatter copy
        surv *= g
        total *= g
        if sums is not None:
            sums *= g
        return
    rows = np.nonzero(due)[0]
    surv[rows] *= g
    total[rows] *= g
    if sums is not None:
        sums[rows] *= g


def row_size(cfg: DetectorConfig) -> int:
    """Floats per feature histogram row: ``tail_bins`` survival counts or bin sums and two
    zeros (a read of the two edges above the top bin needs no bounds check)."""
    return cfg.tail_bins + 2


def exceedance_at(
    logf: np.ndarray,
    flat: np.ndarray,
    base: np.ndarray,
    tot: np.ndarray,
    cfg: DetectorConfig,
    lo_edge: float,
    beyond_log10: float,
) -> np.ndarray:
    """log10 of the empirical P(F >= f) of (N, F) log2 values ``logf`` (read conservatively at
    the lower edge of their bin), each against the plain survival histogram starting at
    ``flat[base]`` (``base``: (N, F) C-contiguous offsets, multiples of the bin count,
    into the flat survival counts ``flat``) with the decayed total ``tot`` (N, F).

    Any histogram per value: the level test reads one of two histograms per series, and a run
    test only the series in a long enough run (no copy of their histograms).
    """
    k = cfg.tail_bins
    half = _HALF
    pos = (logf - _F32(lo_edge)) / _F32(cfg.tail_step)
    lo_f = np.floor(np.clip(pos, 0, k - 1))  # float32, so the arithmetic below stays float32
    lo = lo_f.astype(np.intp)
    hi = np.minimum(lo + 1, k - 1)
    # conservative: every past value in this value's bin counts as at least as large
    s_lo = flat[base + lo]
    num = np.log10(s_lo + half)
    s_hi = flat[base + hi]
    # beyond the record (the last edge any past value reached) the tail keeps falling; only a
    # value whose upper edge has no counts can be past it. Survival counts never increase along
    # the edges, so when the lower edge has counts the record is that edge; only a value beyond
    # a bin with no counts needs the search for the record further down.
    past = (s_hi < half) | (pos > k - 1)
    step = _F32(beyond_log10)
    if past.any():  # (usually none: num - 0 is num)
        num -= np.where(past, np.maximum(pos - lo_f, _F32(0.0)) * step, _F32(0.0))
    deep = past & (s_lo < half)
    n_deep = np.count_nonzero(deep)
    if n_deep * 8 > deep.size:  # many (an empty histogram, a series' first days): all at once
        rec = np.zeros(deep.shape, dtype=np.intp)
        filled = (deep & (flat[base] >= half)).reshape(-1)
        if filled.any():
            (i,) = np.nonzero(filled)
            rec.reshape(-1)[i] = np.maximum(_count_record(flat, base.reshape(-1)[i], k), 0)
        num -= np.where(deep, (lo - rec) * step, 0.0)
    elif n_deep:  # past a bin with no counts: the record is further down
        r, c = np.nonzero(deep)
        num[r, c] -= (lo[r, c] - np.maximum(_record(flat, base[r, c], k), 0)) * step
    below = pos < 0  # below the lowest edge: every past value counts
    if below.any():
        np.copyto(num, np.log10(tot + half), where=below)
    out: np.ndarray = np.minimum(num - np.log10(tot + _F32(1.0)), _F32(0.0)).astype(_F32, copy=False)
    return out


def _record(flat: np.ndarray, b: np.ndarray, k: int) -> np.ndarray:
    """Last edge with counts (-1: none) of the histograms at the flat offsets ``b`` of ``flat``.

    Survival counts never increase along the edges, so a histogram whose first edge has no
    counts is empty and only the others need their edges counted (a series' seasonal level
    histogram stays empty for its first two days: counting its 64 edges per step cost 1 ms for
    5,000 series).
    """
    record = np.full(len(b), -1, dtype=np.intp)
    filled = flat[b] >= _HALF
    if filled.any():
        record[filled] = _count_record(flat, b[filled], k)
    return record


def _count_record(flat: np.ndarray, b: np.ndarray, k: int) -> np.ndarray:
    """Last edge with counts of the histograms at the flat offsets ``b``, whose first edge has
    counts."""
    out: np.ndarray = np.count_nonzero(flat[b[:, None] + np.arange(k)] >= _HALF, axis=-1) - 1
    return out


def _ladder(k: int, width: int) -> np.ndarray:
    """(k + 1, width) float32: row ``c`` has ones on its first ``c`` edges (a value reaching c
    edges), zeros after."""
    lad = _LADDERS.get((k, width))
    if lad is None:
        lad = _LADDERS[(k, width)] = np.tril(np.ones((k + 1, width), dtype=_F32), -1)
        lad.flags.writeable = False
    return lad


_LADDERS: dict[tuple[int, int], np.ndarray] = {}
#: bytes of ladder rows added at a time by :func:`update_tails`
_TAIL_BLOCK_BYTES = 1 << 19


def update_tails(
    logf: np.ndarray,
    surv: np.ndarray,
    sums: np.ndarray,
    total: np.ndarray,
    active: np.ndarray,
    lo_edges: np.ndarray,
    cfg: DetectorConfig,
) -> None:
    """Count this value in place; rows (or, for a 2-D ``active``, features) where ``active`` is
    False are left alone.

    ``logf`` is (N, F) log2 values, ``surv`` and ``sums`` (N, F, :func:`row_size`) the survival
    counts and bin sums (C-contiguous), ``lo_edges`` (F,) the lowest edge of each feature's grid.
    A value reaches the edges at or below it: ``floor(pos) + 1`` of them, ``pos`` being its
    position on the grid. The survival counts gain a prefix of ones, copied from a ladder table
    (a row copy and a same-type add took 0.55 ms per step for 10,000 series, comparing against
    every edge 0.93 ms); the value's bin (the last edge it reaches) adds its position inside the
    bin, ``pos - floor(pos)``, to its sum. The top bin is open: a value beyond the grid adds its
    whole distance from the top edge, so its lump stays where its values are.
    """
    k = cfg.tail_bins
    width = k + 2
    pos = (logf - lo_edges.astype(_F32)) / _F32(cfg.tail_step)
    reach = np.floor(np.clip(pos, -1.0, k - 1)) + _F32(1.0)  # 0 .. k
    keep = ~np.isnan(reach)  # a NaN feature reaches no edge
    act = active if active.ndim == 2 else active[:, None]
    if not active.all():
        keep &= act
    reach = np.where(keep, reach, _F32(0.0))
    ri = reach.astype(np.intp)
    # the bin sums first (their lines are still in the cache from this step's reads): one float
    # per value (each (series, feature) row is its own, so no index repeats)
    counted = reach > _F32(0.0)
    # 0 <= . < 1, but in the open top bin (cut at k bins beyond it, so an infinite value cannot
    # make its sum infinite)
    inside = np.where(counted, vmin(pos - (reach - _F32(1.0)), float(k)), _F32(0.0))
    n, nf = logf.shape
    at = row_bases(n, nf, sums.shape[1], 0, width) + vmax(ri - 1, 0)
    flat = sums.reshape(-1)
    flat.put(at, flat.take(at) + inside)
    lad = _ladder(k, width)
    # in blocks of series: each block's ladder rows (512 kB) are added while still in the cache
    # (the whole (N, F, bins) temporary at once: 8 % more time per step for 5,000 series)
    rows = max(1, _TAIL_BLOCK_BYTES // max(1, surv.strides[0]))  # (a series' histograms: 1 kB)
    for a in range(0, len(surv), rows):
        s = surv[a : a + rows]
        np.add(s, lad.take(ri[a : a + rows], axis=0), out=s)
    total += act


def row_bases(n: int, nf: int, nf_all: int, first: int, row: int) -> np.ndarray:
    """(n, nf) flat offsets of the histograms ``first .. first+nf-1`` of ``n`` series with
    ``nf_all`` histograms of ``row`` floats each (read-only, cached per shape)."""
    key = (n, nf, nf_all, first, row)
    base = _BASES.get(key)
    if base is None:
        if len(_BASES) > 64:
            _BASES.clear()
        base = _BASES[key] = (np.arange(n, dtype=np.intp)[:, None] * nf_all + (first + np.arange(nf))) * row
        base.flags.writeable = False
    return base


def survival_log10(
    logf: np.ndarray,
    flat: np.ndarray,
    gflat: np.ndarray,
    base: np.ndarray,
    tot: np.ndarray,
    cfg: DetectorConfig,
    lo_edge: float,
) -> np.ndarray:
    """log10 of the tail probability of (N, F) log2 values ``logf``, each against the histogram
    at ``flat[base]`` (``base``: (N, F) offsets of :func:`row_size` rows into the flat histograms
    ``flat``) with the decayed total ``tot`` (N, F).

    A past value at position ``p`` counts as ``clip((p - y0) / w, 0, 1)`` for the window
    ``[y0, y1]`` of width ``w`` (positions) below the value at ``y1``: the mean over the window
    of the survival count of the lumped values. With the lumps of bin ``j`` (``c_j`` values,
    bin sum ``g_j``, so at ``j + g_j / c_j``), the integral of that survival count over
    ``[j, j + f]`` is ``f * S_{j+1} + min(c_j * f, g_j)``; a window no wider than a bin spans at
    most two bins, so five reads per value give it. Below the grid every past value counts.
    """
    k = cfg.tail_bins
    w = _F32(cfg.tail_window / cfg.tail_step)
    half = _HALF
    y1 = (logf - _F32(lo_edge)) * _F32(1.0 / cfg.tail_step)
    y0c = vmax(y1 - w, 0.0)
    b0f = vmin(np.floor(y0c), float(k - 1))
    f0 = y0c - b0f  # where the window starts in bin b0 (beyond 1 in the open top bin)
    u1 = vmax(y1, 0.0) - b0f  # where it ends, from the start of bin b0 (<= f0 + w)
    at = base + b0f.astype(np.intp)
    s1 = flat.take(at + 1)
    c0 = flat.take(at) - s1
    g0 = gflat.take(at)
    c1 = s1 - flat.take(at + 2)
    g1 = gflat.take(at + 1)
    # The integral over [b0, b0 + u] of the survival count is u * S1 + min(c0 * u, g0) while
    # u <= 1, then S1 + g0 + v * S2 + min(c1 * v, g1) for v = u - 1 into bin b0 + 1. Since
    # g0 <= c0 (each value's place in its bin is below 1), both are
    # u * S1 + min(c0 * u, g0) + min(0, g1 - c1 * v) with v = max(u - 1, 0), which also holds in
    # the open top bin (the two padding edges above it are zeros, so c1 = g1 = 0 there).
    integral = (u1 - f0) * s1
    integral += np.minimum(c0 * u1, g0)
    integral -= np.minimum(c0 * f0, g0)
    v1 = vmax(u1 - _F32(1.0), 0.0)
    integral += vmin(g1 - c1 * v1, 0.0)
    top = b0f >= _F32(k - 2)  # the window reaches into the open top bin
    if top.any():
        r, c = np.nonzero(top)
        integral[r, c] += _open_top(
            b0f[r, c], f0[r, c], u1[r, c], v1[r, c], c0[r, c], g0[r, c], c1[r, c], g1[r, c], k
        )
    if (y1 < w).any():  # part of the window is below the grid: every past value counts there
        integral += np.clip(w - y1, _F32(0.0), w) * tot
    est = integral * _F32(1.0 / w)
    log10p = log10((est + half) / (tot + _F32(1.0)))
    # beyond the record (no past value reaches into the window): the tail keeps falling with the
    # distance of the window's middle from the record's lump
    past = est < half
    if past.any():
        r, c = np.nonzero(past)
        log10p[r, c] -= _beyond(flat, gflat, base[r, c], y1[r, c] - w * _F32(0.5), b0f[r, c], cfg)
    out: np.ndarray = vmin(log10p, 0.0)
    return out


def _soft(c: np.ndarray, g: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Integral over the first ``u`` positions of the open top bin of its survival count, ``c``
    values spread exponentially above its edge with mean distance ``g / c``:
    ``g * (1 - exp(-c * u / g))`` (``min(c * u, g)`` for a lump at the mean)."""
    gs = np.maximum(g, _F32(1e-30))
    out: np.ndarray = gs * -np.expm1(-c * u / gs)
    return out


def _open_top(
    b0f: np.ndarray,
    f0: np.ndarray,
    u1: np.ndarray,
    v1: np.ndarray,
    c0: np.ndarray,
    g0: np.ndarray,
    c1: np.ndarray,
    g1: np.ndarray,
    k: int,
) -> np.ndarray:
    """Correction to the lumped window integral for windows reaching into the open top bin.

    Values above the top edge are not one lump at their mean but an exponential tail in log2
    (a Pareto tail in the values) with the same count and mean: a value between their mean and
    their largest still has past values at least as large, and how many falls smoothly (with
    a lump, a grid that ends 2^14.5 units up instead of 2^19.1 cost 4.5 NAB points).
    """
    in_top = b0f >= _F32(k - 1)
    lump = np.where(
        in_top,
        np.minimum(c0 * u1, g0) - np.minimum(c0 * f0, g0),
        np.minimum(g1 - c1 * v1, _F32(0.0)) + c1 * v1,
    )
    soft = np.where(in_top, _soft(c0, g0, u1) - _soft(c0, g0, f0), _soft(c1, g1, v1))
    out: np.ndarray = soft - lump
    return out


def _beyond(
    flat: np.ndarray, gflat: np.ndarray, base: np.ndarray, y: np.ndarray, b0f: np.ndarray, cfg: DetectorConfig
) -> np.ndarray:
    """log10 the tail falls beyond the record for values at positions ``y`` (window middles,
    lower window bin ``b0f``) against the histograms at ``flat[base]``: ``tail_beyond_log10``
    per log2 of distance from the record's lump (the largest bin with counts, at its mean).

    No past value reaches into the window, so the record is in bin ``b0`` or ``b0 + 1`` (its
    survival count reaches 1/2 there) or further down (searched); an empty histogram has its
    record at the lowest edge.
    """
    k = cfg.tail_bins
    half = _HALF
    b0 = b0f.astype(np.intp)
    rec = np.where(flat[base + b0 + 1] >= half, b0 + 1, b0)
    down = flat[base + rec] < half
    if down.any():
        rec[down] = np.maximum(_record(flat, base[down], k), 0)
    s_r = flat[base + rec]
    c_r = s_r - flat[base + rec + 1]
    g_r = gflat[base + rec]
    mean = np.where(c_r > 0, g_r / np.maximum(c_r, _F32(1e-30)), _F32(0.0))
    # in the open top bin, where the exponential tail's survival count falls to 1/2
    spread = np.where(rec == k - 1, np.log(np.maximum(_F32(2.0) * c_r, _F32(1.0))), _F32(1.0))
    lump = rec + mean * spread
    dist = np.maximum(y - lump, _F32(0.0)) * _F32(cfg.tail_step)
    out: np.ndarray = (dist * _F32(cfg.tail_beyond_log10)).astype(_F32, copy=False)
    return out
