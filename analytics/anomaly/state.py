"""Per-series detector state: a few fixed-size numpy fields, vectorised over series.

The state of ``n`` series is one :class:`AnomalyState` holding arrays whose first axis is the
series. One series' state serialises to a small ``bytes`` value (stored per series in the
database, ``series.anomaly_state``) and back; a batch of states is rebuilt from a list of them.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from analytics.anomaly.config import DEFAULT_CONFIG, STATE_VERSION, DetectorConfig
from analytics.anomaly.tails import row_size

#: predictors, in the column order of the error trackers
PREDICTORS = ("persist", "mean", "daily", "weekly", "persist_daily", "persist_weekly")
#: features whose tail probabilities are combined, in the column order of the tail trackers
FEATURES = ("point", "level", "density", "stuck", "excursion")
#: features whose tail probability comes from the decayed histogram of their own values
HIST_FEATURES = ("point", "level", "season_level", "density")


@dataclass(frozen=True)
class _Field:
    name: str
    width: int  # 0 means one value per series, k means k values per series
    dtype: str
    init: float


def _fields(cfg: DetectorConfig) -> tuple[_Field, ...]:
    nan = float("nan")
    npred, nfeat = len(PREDICTORS), len(HIST_FEATURES)
    return (
        _Field("t_first", 0, "<f8", nan),
        _Field("t_last", 0, "<f8", nan),
        _Field("x_ref", 0, "<f8", 0.0),
        _Field("n", 0, "<f4", 0.0),
        _Field("dt_typ", 0, "<f4", 0.0),
        _Field("x_last", 0, "<f4", 0.0),
        _Field("mean", 0, "<f4", 0.0),
        _Field("off_d", 0, "<f4", 0.0),
        _Field("off_w", 0, "<f4", 0.0),
        _Field("prev_d", 0, "<f4", 0.0),
        _Field("prev_w", 0, "<f4", 0.0),
        _Field("err", npred, "<f4", 0.0),
        _Field("err_n", npred, "<f4", 0.0),
        _Field("peak", 0, "<f4", 0.0),
        _Field("scale", 0, "<f4", 0.0),
        _Field("density", 0, "<f4", 0.0),
        _Field("run", 0, "<f4", 0.0),
        _Field("run_total", 0, "<f4", 0.0),
        _Field("run_surv", cfg.tail_bins, "<f4", 0.0),
        _Field("ex_run", 0, "<f4", 0.0),
        _Field("ex_total", 0, "<f4", 0.0),
        _Field("ex_surv", cfg.tail_bins, "<f4", 0.0),
        _Field("tail_total", nfeat, "<f4", 0.0),
        _Field("tail_surv", nfeat * row_size(cfg), "<f4", 0.0),
        _Field("tail_sums", nfeat * row_size(cfg), "<f4", 0.0),
        _Field("season_t0", 0, "<f8", nan),
        _Field("bins_d", 0, "<f4", 0.0),
        _Field("bins_w", 0, "<f4", 0.0),
        _Field("daily", cfg.daily_bins, "<f4", 0.0),
        _Field("weekly", cfg.weekly_bins, "<f4", 0.0),
    )


class AnomalyState:
    """Detector state of ``n_series`` series (attribute per field, first axis = series)."""

    t_first: np.ndarray
    t_last: np.ndarray
    x_ref: np.ndarray
    n: np.ndarray
    dt_typ: np.ndarray
    x_last: np.ndarray
    mean: np.ndarray
    off_d: np.ndarray
    off_w: np.ndarray
    prev_d: np.ndarray
    prev_w: np.ndarray
    err: np.ndarray
    err_n: np.ndarray
    peak: np.ndarray
    scale: np.ndarray
    density: np.ndarray
    run: np.ndarray
    run_total: np.ndarray
    run_surv: np.ndarray
    ex_run: np.ndarray
    ex_total: np.ndarray
    ex_surv: np.ndarray
    tail_total: np.ndarray
    tail_surv: np.ndarray
    tail_sums: np.ndarray
    season_t0: np.ndarray
    bins_d: np.ndarray
    bins_w: np.ndarray
    daily: np.ndarray
    weekly: np.ndarray

    def __init__(self, arrays: dict[str, np.ndarray], cfg: DetectorConfig = DEFAULT_CONFIG) -> None:
        self.cfg = cfg
        self._spec = _fields(cfg)
        for f in self._spec:
            setattr(self, f.name, arrays[f.name])

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def new(cls, n_series: int, cfg: DetectorConfig = DEFAULT_CONFIG) -> AnomalyState:
        """Fresh state for ``n_series`` series that have seen no data yet."""
        if n_series < 0:
            raise ValueError(f"n_series must be >= 0, got {n_series}")
        arrays = {}
        for f in _fields(cfg):
            shape = (n_series,) if f.width == 0 else (n_series, f.width)
            arrays[f.name] = np.full(shape, f.init, dtype=np.dtype(f.dtype).newbyteorder("="))
        return cls(arrays, cfg)

    @property
    def n_series(self) -> int:
        return int(self.t_last.shape[0])

    def arrays(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in self._spec}

    def copy(self) -> AnomalyState:
        return AnomalyState({k: v.copy() for k, v in self.arrays().items()}, self.cfg)

    def select(self, index: np.ndarray | Sequence[int] | slice) -> AnomalyState:
        """State of a subset of the series (a copy)."""
        return AnomalyState({k: v[index].copy() for k, v in self.arrays().items()}, self.cfg)

    def assign(self, index: np.ndarray | slice, other: AnomalyState) -> None:
        """Overwrite the series at ``index`` with the state of ``other`` (same order)."""
        for name, arr in other.arrays().items():
            getattr(self, name)[index] = arr

    @classmethod
    def concat(cls, states: Sequence[AnomalyState]) -> AnomalyState:
        if not states:
            raise ValueError("concat needs at least one state")
        cfg = states[0].cfg
        if any(s.cfg != cfg for s in states):
            raise ValueError("cannot concatenate states made with different configurations")
        names = [f.name for f in states[0]._spec]
        return cls({k: np.concatenate([getattr(s, k) for s in states]) for k in names}, cfg)

    # -- serialisation --------------------------------------------------------------------
    def _record_dtype(self) -> np.dtype:
        return np.dtype(
            [(f.name, f.dtype) if f.width == 0 else (f.name, f.dtype, (f.width,)) for f in self._spec]
        )

    def _header(self) -> bytes:
        cfg = self.cfg
        return struct.pack("<BHH", STATE_VERSION, cfg.daily_bins, cfg.weekly_bins)

    def to_bytes(self) -> list[bytes]:
        """One ``bytes`` value per series (little-endian, versioned, fixed size)."""
        rec = np.empty(self.n_series, dtype=self._record_dtype())
        for f in self._spec:
            rec[f.name] = getattr(self, f.name)
        head = self._header()
        return [head + r.tobytes() for r in rec]

    @classmethod
    def from_bytes(cls, blobs: Sequence[bytes], cfg: DetectorConfig = DEFAULT_CONFIG) -> AnomalyState:
        """Rebuild the state of ``len(blobs)`` series; raises ``ValueError`` on a foreign blob."""
        proto = cls.new(0, cfg)
        head = proto._header()
        dtype = proto._record_dtype()
        size = len(head) + dtype.itemsize
        for i, b in enumerate(blobs):
            if len(b) != size or b[: len(head)] != head:
                raise ValueError(
                    f"state blob {i}: not a version-{STATE_VERSION} anomaly state for this "
                    f"configuration ({len(b)} bytes, expected {size})"
                )
        raw = b"".join(b[len(head) :] for b in blobs)
        rec = np.frombuffer(raw, dtype=dtype)
        arrays = {}
        for f in proto._spec:
            arrays[f.name] = np.array(rec[f.name], dtype=np.dtype(f.dtype).newbyteorder("="))
        return cls(arrays, cfg)

    def nbytes_per_series(self) -> int:
        return len(self._header()) + self._record_dtype().itemsize
