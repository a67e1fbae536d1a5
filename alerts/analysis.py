"""Anomaly scores and QC flags for every evaluated reading, stored for the API and dashboard.

Anomaly: ``analytics.anomaly``'s incremental state, one row per series, kept in memory and saved in
``series.anomaly_state`` as a checkpoint: in an evaluation transaction at most every
``checkpoint_s`` (30 s) and when the service stops, so a restart continues where the checkpoint
stopped (no re-warming). Saving it every step cost more than evaluating: a state is 3.5 kB, and at
46,000 readings/s from 2,500 series each half-second step rewrote 9 MB. After a ``kill -9`` the states
are at most ``checkpoint_s`` older than the cursor: the detector then sees those series' next reading
after a gap (rules, QC flags and the cursor are saved every step, so nothing is evaluated twice or
skipped). Scores at or above ``floor`` go to ``anomaly_scores``.

QC: ``kernel.qc`` (QARTOD tests, causal aggregate) over each series' recent history plus the new
readings; the history is read back from ``readings`` when a series is first seen, so nothing extra
is persisted. Suspect (3) and fail (4) flags go to ``qc_flags`` with the tests that raised them.

Farm decision: each reading also gets ``farm_score`` from ``analytics.anomaly.farm`` (QC alarms
count as 1, readings explained by farm context as 0: soil moisture while or two hours after it
rains anywhere on the farm, a rain gauge, a daily counter's rollover at the farm's local midnight).
Rules with ``source = "farm_anomaly"`` compare it with the documented level (``farm.ALERT_LEVEL``,
0.38). The farm's last rain is kept per farm and read back from ``readings`` when a farm is first
seen. ``farm.stuck_alarms`` and ``farm.drift_alarms`` (windows over days) are not applied here yet.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psycopg

from alerts.engine import Row
from alerts.sites import Sites
from alerts.windows import read_back
from analytics.anomaly import AnomalyState, farm, update
from analytics.qc.run import history_needed_s
from kernel.qc import qc_metric, thresholds_for

DEFAULT_FLOOR = 0.1
MAX_TAIL = 300  # readings of history per series for QC (memory: ~5 kB per series)
RAIN_METRIC = "rain_mm"
RAIN_AFTER_S = 2 * 3600.0  # how far back a farm's last rain is read when the farm is first seen
CHECKPOINT_S = 30.0  # anomaly states are saved at most this often (and when the service stops)


# metrics farm context can explain (farm.explained); any other reading's farm score is its
# detector score, or 1 where QC alarms (farm.farm_scores with nothing explained)
_CONTEXT_METRICS = farm.WEATHER | farm.WATERED | farm.DAILY_COUNTERS


def _block_len(b: tuple[int, int, int]) -> int:
    return b[2] - b[1]


@dataclass
class Analyzer:
    floor: float = DEFAULT_FLOOR
    qc: bool = True
    checkpoint_s: float = CHECKPOINT_S
    index: dict[int, int] = field(default_factory=dict)  # series id -> row of `state`
    state: AnomalyState | None = None
    tails: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    dirty: set[int] = field(default_factory=set)
    scores: list[tuple[float, int, float]] = field(default_factory=list)  # to store this step
    flags: list[tuple[float, int, int, str]] = field(default_factory=list)
    last_wet: dict[str, float] = field(default_factory=dict)  # farm -> its last reading of rain > 0
    sites: Sites = field(default_factory=Sites)  # farm -> its place and local time's offset
    _rain: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # this step's rain
    _saved_at: float = field(default_factory=time.monotonic)  # the last checkpoint of the states
    _saving: bool = False  # this transaction writes the states

    def checkpoint_due(self) -> bool:
        return bool(self.dirty) and time.monotonic() - self._saved_at >= self.checkpoint_s

    def process(self, conn: psycopg.Connection[Any], rows: list[Row]) -> None:
        """Score and QC ``rows`` (series by series, time order); sets ``row.score`` and ``row.qc``."""
        if not rows:
            return
        blocks: list[tuple[int, int, int]] = []  # (series id, start, end) into rows
        start = 0
        for i in range(1, len(rows) + 1):
            if i == len(rows) or rows[i].series_id != rows[start].series_id:
                blocks.append((rows[start].series_id, start, i))
                start = i
        self._load_state(conn, [b[0] for b in blocks if b[0] not in self.index])
        self._score(rows, blocks)
        self._farm_context(conn, rows, blocks)
        if self.qc:
            self._qc(conn, rows, blocks)
        else:
            for _, s, e in blocks:
                part = rows[s:e]
                self._decide(part, np.array([r.t for r in part]), np.array([r.value for r in part]), None)
        for f, (rt, rv) in self._rain.items():
            wet = rt[np.nan_to_num(rv) > 0]
            if len(wet):
                self.last_wet[f] = max(self.last_wet.get(f, float("-inf")), float(wet.max()))
        self._rain = {}

    def _farm_context(
        self, conn: psycopg.Connection[Any], rows: list[Row], blocks: list[tuple[int, int, int]]
    ) -> None:
        """What farm context needs for this step: each farm's rain (its last rain before, and this
        step's rain readings) and its local time's offset."""
        farms = {rows[s].farm for _, s, _ in blocks}
        self.sites.load(conn, farms)
        rain: dict[str, list[Row]] = {}
        watered: dict[str, float] = {}  # farm -> its first watered reading of this step
        for _, s, e in blocks:
            r0 = rows[s]
            if r0.metric == RAIN_METRIC:
                rain.setdefault(r0.farm, []).extend(rows[s:e])
            elif r0.metric in farm.WATERED:
                watered[r0.farm] = min(watered.get(r0.farm, r0.t), r0.t)
        need = sorted(f for f in watered if f not in self.last_wet)
        for f in need:
            self.last_wet[f] = float("-inf")
        if need:
            for f, t in conn.execute(
                "SELECT n.farm_id, extract(epoch FROM max(r.time))::float8 FROM unnest(%s::text[],"
                " %s::float8[]) AS u(farm, first) JOIN nodes n ON n.farm_id = u.farm"
                " JOIN series s ON s.node_id = n.id AND s.metric = %s"
                " JOIN readings r ON r.series_id = s.id AND r.value > 0"
                " AND r.time < to_timestamp(u.first) AND r.time >= to_timestamp(u.first - %s)"
                " GROUP BY n.farm_id",
                (need, [watered[f] for f in need], RAIN_METRIC, RAIN_AFTER_S),
            ).fetchall():
                if t is not None:
                    self.last_wet[str(f)] = float(t)
        self._rain = {
            f: (np.array([r.t for r in rs]), np.array([r.value for r in rs])) for f, rs in rain.items()
        }

    def _decide(self, rows: list[Row], t: np.ndarray, v: np.ndarray, qc_alarm: np.ndarray | None) -> None:
        """``row.farm_score`` for ``rows``, the last ``len(rows)`` readings of ``t``/``v`` (one series,
        earlier history first), through ``analytics.anomaly.farm``."""
        r0 = rows[0]
        if r0.metric not in _CONTEXT_METRICS:  # nothing on the farm explains it: score, or 1 on QC alarm
            alarm = qc_alarm.tolist() if qc_alarm is not None else [False] * len(rows)
            for r, a in zip(rows, alarm, strict=True):
                sc = r.score
                r.farm_score = 1.0 if a else (0.0 if sc is None or sc != sc else sc)
            return
        rain_t, rain_v = self._rain.get(r0.farm, (np.empty(0), np.empty(0)))
        last = self.last_wet.get(r0.farm, float("-inf"))
        if last > float("-inf"):
            rain_t, rain_v = np.concatenate([[last], rain_t]), np.concatenate([[1.0], rain_v])
        ctx = farm.explained(
            r0.metric, t, v, rain_times=rain_t, rain=rain_v, utc_offset_s=self.sites[r0.farm].utc_offset_s
        )[len(t) - len(rows) :]
        scores = np.array([np.nan if r.score is None else r.score for r in rows])
        out = farm.farm_scores(scores, qc_alarm, ctx).tolist()
        for r, fs in zip(rows, out, strict=True):
            r.farm_score = fs

    def _load_state(self, conn: psycopg.Connection[Any], sids: list[int]) -> None:
        if not sids:
            return
        blobs = dict(
            conn.execute(
                "SELECT id, anomaly_state FROM series WHERE id = ANY(%s) AND anomaly_state IS NOT NULL",
                (sids,),
            ).fetchall()
        )
        saved = [sid for sid in sids if sid in blobs]
        parts = []
        order: list[int] = []
        if saved:
            try:
                parts.append(AnomalyState.from_bytes([bytes(blobs[s]) for s in saved]))
                order += saved
            except ValueError:  # another detector version: those start afresh
                saved = []
        fresh = [sid for sid in sids if sid not in set(saved)]
        if fresh:
            parts.append(AnomalyState.new(len(fresh)))
            order += fresh
        base = [self.state] if self.state is not None else []
        self.state = AnomalyState.concat([*base, *parts])
        n0 = len(self.index)
        for k, sid in enumerate(order):
            self.index[sid] = n0 + k

    def _score(self, rows: list[Row], blocks: list[tuple[int, int, int]]) -> None:
        assert self.state is not None
        # longest first: at each time column the series still running are a prefix (a slice copy)
        blocks = sorted(blocks, key=_block_len, reverse=True)
        width = max(e - s for _, s, e in blocks)
        n = len(blocks)
        t = np.empty((n, width), dtype=np.float64)
        x = np.full((n, width), np.nan, dtype=np.float64)
        for k, (_, s, e) in enumerate(blocks):
            m = e - s
            t[k, :m] = [r.t for r in rows[s:e]]
            x[k, :m] = [r.value for r in rows[s:e]]
            t[k, m:] = t[k, m - 1]  # padding: NaN values leave the state unchanged
        idx = np.array([self.index[sid] for sid, _, _ in blocks], dtype=np.int64)
        sub = self.state.select(idx)
        out = update(sub, t, x)
        self.state.assign(idx, sub)
        floor = self.floor
        for k, (sid, s, e) in enumerate(blocks):
            self.dirty.add(sid)
            sc = out[k, : e - s]
            for r, v in zip(rows[s:e], sc.tolist(), strict=True):
                if v == v:
                    r.score = v
                    if v >= floor:
                        self.scores.append((r.t, sid, v))

    def _qc(self, conn: psycopg.Connection[Any], rows: list[Row], blocks: list[tuple[int, int, int]]) -> None:
        need = [(sid, rows[s].t, history_needed_s(thresholds_for(rows[s].metric)))
                for sid, s, _ in blocks if sid not in self.tails]  # fmt: skip
        if need:
            self._load_tails(conn, need)
        by_metric: dict[str, list[tuple[int, int, int]]] = {}
        for blk in blocks:
            by_metric.setdefault(rows[blk[1]].metric, []).append(blk)
        for metric, group in by_metric.items():
            # one vectorised QC run per metric: rows = series (history + new), NaN-padded at the end
            th = thresholds_for(metric)
            hist = history_needed_s(th)
            lens = [len(self.tails[sid][0]) + (e - s) for sid, s, e in group]
            width = max(lens)
            tt = np.full((len(group), width), np.nan)
            vv = np.full((len(group), width), np.nan)
            for k, (sid, s, e) in enumerate(group):
                tail_t, tail_v = self.tails[sid]
                h = len(tail_t)
                tt[k, :h], vv[k, :h] = tail_t, tail_v
                tt[k, h : lens[k]] = [r.t for r in rows[s:e]]
                vv[k, h : lens[k]] = [r.value for r in rows[s:e]]
            res = qc_metric(metric, tt, vv, thresholds=th, causal=True)
            agg = np.asarray(res.aggregate)
            alarms = farm.qc_alarms(res)
            tests = {name: np.asarray(fl) for name, fl in res.tests().items()}
            for k, (sid, s, e) in enumerate(group):
                m, n = e - s, lens[k]
                flags = agg[k, n - m : n].tolist()
                for j, r in enumerate(rows[s:e]):
                    f = int(flags[j])
                    r.qc = f
                    if f in (3, 4):
                        bad = ",".join(name for name, fl in tests.items() if int(fl[k, n - m + j]) >= 3)
                        self.flags.append((r.t, sid, f, bad))
                t, v = tt[k, :n], vv[k, :n]
                self._decide(rows[s:e], t, v, alarms[k, n - m : n])
                keep = t >= t[-1] - hist
                keep[: max(0, n - MAX_TAIL)] = False
                self.tails[sid] = (t[keep], v[keep])

    def _load_tails(self, conn: psycopg.Connection[Any], need: list[tuple[int, float, float]]) -> None:
        """Recent history of series seen for the first time, from the stored readings."""
        self.tails.update(read_back(conn, need, MAX_TAIL))

    def persist(
        self,
        conn: psycopg.Connection[Any],
        lap: Callable[[str], None] = lambda _: None,
        *,
        force: bool = False,
    ) -> None:
        """Save this step's scores and flags, and the changed states when a checkpoint is due (or
        ``force``), inside the step's transaction; ``lap(phase)`` after each part (timing)."""
        self._saving = bool(self.dirty) and self.state is not None and (force or self.checkpoint_due())
        if self._saving:
            assert self.state is not None
            sids = sorted(self.dirty)
            blobs = self.state.select(np.array([self.index[s] for s in sids])).to_bytes()
            conn.execute(
                "UPDATE series s SET anomaly_state = u.b FROM unnest(%b::int[], %b::bytea[]) AS u(id, b)"
                " WHERE s.id = u.id",
                (sids, blobs),
            )
        lap("write_anomaly_state")
        if self.scores:
            cols = list(zip(*self.scores, strict=True))
            conn.execute(
                "INSERT INTO anomaly_scores (time, series_id, score) SELECT to_timestamp(t), s, v"
                " FROM unnest(%b::float8[], %b::int[], %b::real[]) AS u(t, s, v) ON CONFLICT DO NOTHING",
                [list(c) for c in cols],
            )
        lap("write_scores")
        if self.flags:
            cols = list(zip(*self.flags, strict=True))
            conn.execute(
                "INSERT INTO qc_flags (time, series_id, flag, tests) SELECT to_timestamp(t), s, f, x"
                " FROM unnest(%b::float8[], %b::int[], %b::int2[], %b::text[]) AS u(t, s, f, x)"
                " ON CONFLICT DO NOTHING",
                [list(c) for c in cols],
            )
        lap("write_qc_flags")

    def committed(self) -> None:
        if self._saving:
            self.dirty.clear()
            self._saved_at = time.monotonic()
            self._saving = False
        self.scores.clear()
        self.flags.clear()
