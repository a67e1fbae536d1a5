"""Anomaly scores and QC flags for every evaluated reading, stored for the API and dashboard.

Anomaly: ``analytics.anomaly``'s incremental state, one row per series, kept in memory and saved in
``series.anomaly_state`` as a checkpoint: in an evaluation transaction at most every
``checkpoint_s`` (30 s) and when the service stops, so a restart continues where the checkpoint
stopped (no re-warming). Saving it every step cost more than evaluating: a state is 4.5 kB (3.5 kB
when measured: at 46,000 readings/s from 2,500 series each half-second step rewrote 9 MB). After a
``kill -9`` the states are at most ``checkpoint_s`` older than the cursor: the detector then sees
those series' next reading after a gap (rules, QC flags and the cursor are saved every step, so
nothing is evaluated twice or skipped). Scores at or above ``floor`` go to ``anomaly_scores``.

QC: ``kernel.qc`` (QARTOD tests, causal aggregate) over each series' recent history plus the new
readings; the history is read back from ``readings`` when a series is first seen, so nothing extra
is persisted. Suspect (3) and fail (4) flags go to ``qc_flags`` with the tests that raised them.

Farm decision: each reading also gets ``farm_score`` from ``analytics.anomaly.farm`` (QC alarms
count as 1, readings explained by farm context as 0: soil moisture while or two hours after it
rains anywhere on the farm, a rain gauge, a daily counter's rollover at the farm's local midnight).
Rules with ``source = "farm_anomaly"`` compare it with the documented level (``farm.ALERT_LEVEL``,
0.38). The farm's last rain is kept per farm and read back from ``readings`` when a farm is first
seen. QC-like alarms also come from the farm rules over days, stepped with state per series (saved
with the anomaly state in ``series.farm_state``): the stuck-probe rule (``farm.stuck_update``, every
metric but rain, where context does not explain the reading) and the slow-trend test
(``farm.drift_update`` on ``farm.DRIFT_METRICS``, from the days of history the service's windows
keep for farms with a farm-anomaly rule on that metric). Their alarms are stored as suspect (3)
flags with the test ``stuck_probe`` or ``slow_trend``, next to QC's own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psycopg

from alerts.engine import Block
from alerts.sites import Sites
from alerts.windows import Windows, read_back
from analytics.anomaly import AnomalyState, farm, update
from analytics.qc.run import history_needed_s
from kernel.log import event, get_logger
from kernel.qc import qc_metric, thresholds_for

_log = get_logger("alerts")

DEFAULT_FLOOR = 0.1
MAX_TAIL = 300  # readings of history per series for QC (memory: ~5 kB per series)
RAIN_METRIC = "rain_mm"
RAIN_AFTER_S = 2 * 3600.0  # how far back a farm's last rain is read when the farm is first seen
CHECKPOINT_S = 30.0  # anomaly states are saved at most this often (and when the service stops)
# states written per step: a checkpoint of 16,000 series (56 MB) is spread over four steps instead
# of holding one step (and every alert found in it) for the whole write
CHECKPOINT_BATCH = 4000


def _fresh_rule_state(n: int) -> np.ndarray:
    return np.concatenate([farm.stuck_state(n), farm.drift_state(n)], axis=1)


_STUCK = slice(0, len(farm.STUCK_STATE))
_DRIFT = slice(len(farm.STUCK_STATE), len(farm.STUCK_STATE) + len(farm.DRIFT_STATE))

# metrics farm context can explain (farm.explained); any other reading's farm score is its
# detector score, or 1 where QC alarms (farm.farm_scores with nothing explained)
_CONTEXT_METRICS = farm.WEATHER | farm.WATERED | farm.DAILY_COUNTERS


@dataclass
class Analyzer:
    floor: float = DEFAULT_FLOOR
    qc: bool = True
    checkpoint_s: float = CHECKPOINT_S
    index: dict[int, int] = field(default_factory=dict)  # series id -> row of `state`
    state: AnomalyState | None = None
    # the farm rules over days, per series (rows as `state`): stuck-probe, then slow-trend state
    rule_state: np.ndarray = field(default_factory=lambda: _fresh_rule_state(0))
    tails: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    dirty: set[int] = field(default_factory=set)
    # to store this step: (times, series id, scores) per series
    scores: list[tuple[np.ndarray, int, np.ndarray]] = field(default_factory=list)
    flags: list[tuple[float, int, int, str]] = field(default_factory=list)
    last_wet: dict[str, float] = field(default_factory=dict)  # farm -> its last reading of rain > 0
    sites: Sites = field(default_factory=Sites)  # farm -> its place and local time's offset
    _rain: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # this step's rain
    _saved_at: float = field(default_factory=time.monotonic)  # the last checkpoint of the states
    # a checkpoint in progress: the series whose states are still to save, CHECKPOINT_BATCH a step
    _pending: list[int] = field(default_factory=list)
    # this step's (checkpoint's series, how many saved, whether the checkpoint began with it)
    _saving: tuple[list[int], int, bool] | None = None

    def checkpoint_due(self) -> bool:
        return bool(self.dirty) and time.monotonic() - self._saved_at >= self.checkpoint_s

    def save_due(self) -> bool:
        """States to save in this step: a checkpoint in progress, or a new one due."""
        return bool(self._pending) or self.checkpoint_due()

    def process(
        self, conn: psycopg.Connection[Any], blocks: list[Block], history: Windows | None = None
    ) -> None:
        """Score and QC ``blocks`` (one series each, time order); sets their ``score``, ``qc`` and
        ``farm_score``. ``history`` holds the days of readings the slow-trend test needs (of the
        series whose farm has a farm-anomaly rule on a drifting metric), these blocks included."""
        blocks = [b for b in blocks if len(b)]
        if not blocks:
            return
        self._load_state(conn, [b.series_id for b in blocks if b.series_id not in self.index])
        self._score(blocks)
        self._farm_context(conn, blocks)
        if self.qc:
            self._qc(conn, blocks, history or Windows())
        else:
            for b in blocks:
                self._decide(b, b.t, b.v, None)
        for f, (rt, rv) in self._rain.items():
            wet = rt[np.nan_to_num(rv) > 0]
            if len(wet):
                self.last_wet[f] = max(self.last_wet.get(f, float("-inf")), float(wet.max()))
        self._rain = {}

    def _farm_context(self, conn: psycopg.Connection[Any], blocks: list[Block]) -> None:
        """What farm context needs for this step: each farm's rain (its last rain before, and this
        step's rain readings) and its local time's offset."""
        self.sites.load(conn, {b.farm for b in blocks})
        rain: dict[str, list[Block]] = {}
        watered: dict[str, float] = {}  # farm -> its first watered reading of this step
        for b in blocks:
            if b.metric == RAIN_METRIC:
                rain.setdefault(b.farm, []).append(b)
            elif b.metric in farm.WATERED:
                t0 = float(b.t[0])
                watered[b.farm] = min(watered.get(b.farm, t0), t0)
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
        self._rain = {}
        for f, bs in rain.items():
            t = np.concatenate([b.t for b in bs])
            order = np.argsort(t, kind="stable")  # several rain gauges: one time line
            self._rain[f] = (t[order], np.concatenate([b.v for b in bs])[order])

    def _decide(
        self,
        b: Block,
        t: np.ndarray,
        v: np.ndarray,
        qc_alarm: np.ndarray | None,
        stuck: np.ndarray | None = None,
    ) -> None:
        """``b.farm_score``: ``b``'s readings are the last ``len(b)`` of ``t``/``v`` (its series,
        earlier history first), through ``analytics.anomaly.farm``; ``stuck`` alarms count where
        farm context does not explain the reading."""
        scores = b.score if b.score is not None else np.full(len(b), np.nan)
        if b.metric not in _CONTEXT_METRICS:  # nothing on the farm explains it: score, or 1 on QC alarm
            if stuck is not None:
                qc_alarm = stuck if qc_alarm is None else qc_alarm | stuck
            b.farm_score = farm.farm_scores(scores, qc_alarm)
            return
        rain_t, rain_v = self._rain.get(b.farm, (np.empty(0), np.empty(0)))
        last = self.last_wet.get(b.farm, float("-inf"))
        if last > float("-inf"):
            rain_t, rain_v = np.concatenate([[last], rain_t]), np.concatenate([[1.0], rain_v])
        ctx = farm.explained(
            b.metric, t, v, rain_times=rain_t, rain=rain_v, utc_offset_s=self.sites[b.farm].utc_offset_s
        )[len(t) - len(b) :]
        if stuck is not None:
            qc_alarm = (stuck & ~ctx) if qc_alarm is None else qc_alarm | (stuck & ~ctx)
        b.farm_score = farm.farm_scores(scores, qc_alarm, ctx)

    def _load_state(self, conn: psycopg.Connection[Any], sids: list[int]) -> None:
        if not sids:
            return
        got = {
            int(sid): (blob, fs)
            for sid, blob, fs in conn.execute(
                "SELECT id, anomaly_state, farm_state FROM series WHERE id = ANY(%s)"
                " AND (anomaly_state IS NOT NULL OR farm_state IS NOT NULL)",
                (sids,),
            ).fetchall()
        }
        saved = [sid for sid in sids if got.get(sid, (None, None))[0] is not None]
        parts = []
        order: list[int] = []
        if saved:
            try:
                parts.append(AnomalyState.from_bytes([bytes(got[s][0]) for s in saved]))
                order += saved
            except ValueError as exc:  # another detector version: those start afresh
                event(_log, "anomaly_state_discarded", logging.WARNING, series=len(saved), reason=str(exc))
                saved = []
        fresh = [sid for sid in sids if sid not in set(saved)]
        if fresh:
            parts.append(AnomalyState.new(len(fresh)))
            order += fresh
        base = [self.state] if self.state is not None else []
        self.state = AnomalyState.concat([*base, *parts])
        rules = _fresh_rule_state(len(order))
        for k, sid in enumerate(order):
            blob = got.get(sid, (None, None))[1]
            if blob is not None and len(blob) == rules.shape[1] * 8:
                rules[k] = np.frombuffer(bytes(blob), dtype="<f8")
        self.rule_state = np.concatenate([self.rule_state, rules])
        n0 = len(self.index)
        for k, sid in enumerate(order):
            self.index[sid] = n0 + k

    def _score(self, blocks: list[Block]) -> None:
        assert self.state is not None
        # longest first: at each time column the series still running are a prefix (a slice copy)
        order = sorted(blocks, key=len, reverse=True)
        n, width = len(order), len(order[0])
        t = np.empty((n, width), dtype=np.float64)
        x = np.full((n, width), np.nan, dtype=np.float64)
        for k, b in enumerate(order):
            m = len(b)
            t[k, :m] = b.t
            x[k, :m] = b.v
            t[k, m:] = b.t[-1]  # padding: NaN values leave the state unchanged
        idx = np.array([self.index[b.series_id] for b in order], dtype=np.int64)
        sub = self.state.select(idx)
        out = update(sub, t, x)
        self.state.assign(idx, sub)
        with np.errstate(invalid="ignore"):
            high = out >= self.floor
        for k, b in enumerate(order):
            self.dirty.add(b.series_id)
            m = len(b)
            b.score = out[k, :m]
            keep = np.flatnonzero(high[k, :m])
            if len(keep):
                self.scores.append((b.t[keep], b.series_id, b.score[keep]))

    def _qc(self, conn: psycopg.Connection[Any], blocks: list[Block], history: Windows) -> None:
        need = [(b.series_id, float(b.t[0]), history_needed_s(thresholds_for(b.metric)))
                for b in blocks if b.series_id not in self.tails]  # fmt: skip
        if need:
            self._load_tails(conn, need)
        by_metric: dict[str, list[Block]] = {}
        for b in blocks:
            by_metric.setdefault(b.metric, []).append(b)
        for metric, group in by_metric.items():
            # one vectorised QC run per metric: rows = series (history + new), NaN-padded at the end
            th = thresholds_for(metric)
            hist = history_needed_s(th)
            lens = [len(self.tails[b.series_id][0]) + len(b) for b in group]
            width = max(lens)
            tt = np.full((len(group), width), np.nan)
            vv = np.full((len(group), width), np.nan)
            sc = np.full((len(group), width), np.nan)
            for k, b in enumerate(group):
                tail_t, tail_v = self.tails[b.series_id]
                h, n = len(tail_t), lens[k]
                tt[k, :h], vv[k, :h] = tail_t, tail_v
                tt[k, h:n], vv[k, h:n] = b.t, b.v
                if b.score is not None:
                    sc[k, h:n] = b.score
            res = qc_metric(metric, tt, vv, thresholds=th, causal=True)
            agg = np.asarray(res.aggregate)
            alarms = farm.qc_alarms(res)
            stuck, drift = self._day_rules(metric, group, history)
            bad = ((agg == 3) | (agg == 4)).any()
            tests = {name: np.asarray(fl) for name, fl in res.tests().items()} if bad else {}
            plain = None
            if metric not in _CONTEXT_METRICS:  # nothing explains a reading: one call for all series
                extra = np.zeros_like(alarms)
                for k, b in enumerate(group):
                    extra[k, lens[k] - len(b) : lens[k]] = stuck[k, : len(b)] | drift[k, : len(b)]
                plain = farm.farm_scores(sc, alarms | extra)
            for k, b in enumerate(group):
                m, n = len(b), lens[k]
                flags = agg[k, n - m : n]
                b.qc = flags.astype(np.float64)
                st, dr = stuck[k, :m], drift[k, :m]
                for j in np.flatnonzero((flags == 3) | (flags == 4) | st | dr).tolist():
                    names = [name for name, fl in tests.items() if int(fl[k, n - m + j]) >= 3]
                    names += ["stuck_probe"] * bool(st[j]) + ["slow_trend"] * bool(dr[j])
                    f = int(flags[j]) if flags[j] in (3, 4) else 3  # the farm rules' alarms: suspect
                    self.flags.append((float(b.t[j]), b.series_id, f, ",".join(names)))
                t, v = tt[k, :n], vv[k, :n]
                if plain is not None:
                    b.farm_score = plain[k, n - m : n]
                else:
                    self._decide(b, t, v, alarms[k, n - m : n] | drift[k, :m], stuck[k, :m])
                keep = t >= t[-1] - hist
                keep[: max(0, n - MAX_TAIL)] = False
                self.tails[b.series_id] = (t[keep], v[keep])

    def _day_rules(self, metric: str, group: list[Block], history: Windows) -> tuple[np.ndarray, np.ndarray]:
        """The stuck-probe and slow-trend alarms of the group's new readings, ``(G, W)`` each (W: the
        longest block), from each series' saved state (``analytics.anomaly.farm``), as in
        ``analytics.anomaly.synthetic.farm_masks``: stuck for every metric but rain; drift for
        the drifting metrics, where ``history`` holds days of the series' readings."""
        width = max(len(b) for b in group)
        rows = np.array([self.index[b.series_id] for b in group], dtype=np.int64)
        nt = np.empty((len(group), width))
        nv = np.full((len(group), width), np.nan)
        for k, b in enumerate(group):
            nt[k] = b.t[-1]  # padding: the last time, no value (changes no state)
            nt[k, : len(b)], nv[k, : len(b)] = b.t, b.v
        stuck = np.zeros((len(group), width), dtype=bool)
        if metric != RAIN_METRIC:  # a rain gauge's dry days are weather
            st = self.rule_state[rows, _STUCK]
            stuck = farm.stuck_update(st, nt, nv)
            self.rule_state[rows, _STUCK] = st
        drift = np.zeros((len(group), width), dtype=bool)
        if metric in farm.DRIFT_METRICS:
            resid = np.full((len(group), width), np.nan)
            tested = []
            for k, b in enumerate(group):
                win = history.data.get(b.series_id)
                # every reference lies 1-3 days back: none yet in a shorter history
                if win is None or not len(win[0]) or win[0][0] > b.t[-1] - 3 * 86_400.0:
                    continue
                resid[k, : len(b)] = farm.drift_residuals(b.t[None], b.v[None], win[0][None], win[1][None])[0]
                tested.append(k)
            if tested:
                sel = np.array(tested)
                st = self.rule_state[rows[sel], _DRIFT]
                drift[sel] = farm.drift_update(st, nt[sel], resid[sel])
                self.rule_state[rows[sel], _DRIFT] = st
        return stuck, drift

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
        self._saving = None
        # force: everything not saved yet, at once; else a checkpoint in progress, or a new one of
        # every state changed since the last
        new = force or not self._pending
        todo = sorted(self.dirty.union(self._pending)) if force else self._pending or sorted(self.dirty)
        if self.state is not None and todo and (force or self.save_due()):
            sids = todo if force else todo[:CHECKPOINT_BATCH]
            rows = np.array([self.index[s] for s in sids])
            blobs = self.state.select(rows).to_bytes()
            rules = [r.astype("<f8").tobytes() for r in self.rule_state[rows]]
            conn.execute(
                "UPDATE series s SET anomaly_state = u.b, farm_state = u.f"
                " FROM unnest(%b::int[], %b::bytea[], %b::bytea[]) AS u(id, b, f) WHERE s.id = u.id",
                (sids, blobs, rules),
            )
            self._saving = (todo, len(sids), new)
        lap("write_anomaly_state")
        if self.scores:
            times = np.concatenate([x[0] for x in self.scores]).tolist()
            sids = [sid for t, sid, _ in self.scores for _ in range(len(t))]
            vals = np.concatenate([x[2] for x in self.scores]).tolist()
            conn.execute(
                "INSERT INTO anomaly_scores (time, series_id, score) SELECT to_timestamp(t), s, v"
                " FROM unnest(%b::float8[], %b::int[], %b::real[]) AS u(t, s, v) ON CONFLICT DO NOTHING",
                (times, sids, vals),
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
        if self._saving is not None:
            todo, saved, new = self._saving
            if new:  # a checkpoint began with this step: its states are no longer "changed since"
                self.dirty.difference_update(todo)
            self._pending = todo[saved:]
            if not self._pending:
                self._saved_at = time.monotonic()
            self._saving = None
        self.scores.clear()
        self.flags.clear()
