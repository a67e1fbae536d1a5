"""The alert service's pure core: readings in (series by series, time order), rule transitions out.

The feed hands over each stored reading once (see :func:`alerts.feed.read_readings`). A per-series
*watermark* (the newest reading time evaluated) separates readings committed out of time order; an
older reading never flips an episode (:func:`kernel.rules.step` guarantees it).

Derived indices: ``thi`` from the same node's readings at the same time; the day-scale ones
(``do_dawn``, ``disease_risk``, ``water_drop``) from each input series' window of history
(:meth:`Evaluator.windowed`, windows kept by :mod:`alerts.windows`). Anomaly
scores and QC flags come in with the rows (computed by :mod:`alerts.analysis`). Silent-node rules
run on a clock (:meth:`Evaluator.tick`). Episodes are keyed ``rule|farm|node|metric`` and exported
for persistence when they change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from alerts.gateways import GatewayBoard
from alerts.sites import Site
from analytics.agro import (
    DISEASE_RULES,
    dawn_do_at_readings,
    same_hours_totals,
    thi_nrc1971,
    water_drop,
    wet_periods,
)
from analytics.anomaly import farm
from kernel.rules import Episode, Rule, step
from kernel.rules.model import DERIVED, WINDOWED

Arrays = tuple[np.ndarray, np.ndarray]


@dataclass(slots=True)
class Row:
    series_id: int
    node_pk: int
    farm: str
    node: str
    metric: str
    t: float
    value: float
    score: float | None = None  # anomaly score, when scored
    qc: int | None = None  # QARTOD flag, when checked
    farm_score: float | None = None  # the score after the farm's QC and context (analytics.anomaly.farm)
    sensor: bool = True  # False: a block's imagery pseudo node (reports per scene: no clock rules)


@dataclass(slots=True)
class Block:
    """One series' readings of an evaluation step, as columns (time order): the service's unit.

    ``score``, ``qc`` and ``farm_score`` are filled in by :mod:`alerts.analysis` (NaN where a reading
    has none); ``qc`` holds the QARTOD flag as a float.
    """

    series_id: int
    node_pk: int
    farm: str
    node: str
    metric: str
    t: np.ndarray
    v: np.ndarray
    sensor: bool = True
    score: np.ndarray | None = None
    qc: np.ndarray | None = None
    farm_score: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.t)

    def part(self, sl: slice) -> Block:
        """The readings ``sl`` of this block (views of the columns)."""

        def cut(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[sl]

        return Block(self.series_id, self.node_pk, self.farm, self.node, self.metric, self.t[sl], self.v[sl],
                     self.sensor, cut(self.score), cut(self.qc), cut(self.farm_score))  # fmt: skip


def blocks_of(rows: list[Row]) -> list[Block]:
    """Rows (series by series, time order) as one :class:`Block` per run of a series."""
    out: list[Block] = []
    start = 0
    for i in range(1, len(rows) + 1):
        if i < len(rows) and rows[i].series_id == rows[start].series_id:
            continue
        part, r0, start = rows[start:i], rows[start], i

        def col(vals: list[float | None]) -> np.ndarray | None:
            if all(x is None for x in vals):
                return None
            return np.array([np.nan if x is None else x for x in vals], dtype=np.float64)

        out.append(
            Block(
                r0.series_id, r0.node_pk, r0.farm, r0.node, r0.metric,
                np.array([r.t for r in part], dtype=np.float64),
                np.array([r.value for r in part], dtype=np.float64),
                r0.sensor,
                col([r.score for r in part]),
                col([None if r.qc is None else float(r.qc) for r in part]),
                col([r.farm_score for r in part]),
            )
        )  # fmt: skip
    return out


def _event_t(e: Event) -> float:
    return e.t


def _first(x: tuple[float, Block, float]) -> float:
    return x[0]


_THI_INPUTS = DERIVED["thi"][0]  # ("air_t", "air_rh")
_Subject = tuple[
    str, str, int | None, int | None, str
]  # what an episode steps for: farm, node, pk, series, metric


@dataclass(frozen=True, slots=True)
class Event:
    kind: str  # open | close
    rule: Rule
    farm: str
    node: str  # node id, or gateway id for gateway rules
    node_pk: int | None
    series_id: int | None
    metric: str
    t: float
    since: float
    value: float
    peak: float
    note: str | None = None  # what else the index says (e.g. imagery: likely water stress)


def episode_key(rule: Rule, farm: str, node: str, metric: str) -> str:
    return f"{rule.name}|{farm}|{node}|{metric}"


def subject(rule: Rule, node: str, metric: str) -> str:
    """What an alert is about: ``node/metric``, ``node`` (silent) or ``gw/<gateway>``."""
    if rule.kind in ("gateway", "gateway_backlog"):
        return f"gw/{node}"
    return f"{node}/{metric}" if metric else node


@dataclass(frozen=True, slots=True)
class _Job:
    """One series' part of a day-scale index computation: its rules, block, window, new times."""

    rules: list[Rule]
    src: Block
    t: np.ndarray
    v: np.ndarray
    new_t: np.ndarray


@dataclass
class NodeSeen:
    farm: str
    node: str
    last_t: float


@dataclass
class Evaluator:
    rules_for: Callable[[str], list[Rule]]  # farm -> its effective rules
    episodes: dict[str, Episode] = field(default_factory=dict)
    watermarks: dict[int, float] = field(default_factory=dict)
    nodes: dict[int, NodeSeen] = field(default_factory=dict)
    dirty: set[str] = field(default_factory=set)
    dirty_series: set[int] = field(default_factory=set)
    evaluated: int = 0
    site_for: Callable[[str], Site] = field(default=lambda _farm: Site())  # farm -> place, time zone
    _spans: dict[str, dict[str, float]] = field(default_factory=dict)  # farm -> input metric -> span

    def window_span(self, r: Row | Block) -> float:
        """Seconds of history ``r``'s series needs for the farm's day-scale rules (0: none)."""
        spans = self._spans.get(r.farm)
        if spans is None:
            spans = self._spans[r.farm] = {}
            for rule in self.rules_for(r.farm):
                if rule.kind == "threshold" and rule.metric in WINDOWED:
                    for m in DERIVED[rule.metric][0]:
                        spans[m] = max(spans.get(m, 0.0), WINDOWED[rule.metric])
                elif rule.source == "farm_anomaly" and rule.metric in farm.DRIFT_METRICS:
                    # the farm score's slow-trend test compares with the same time of earlier days
                    spans[rule.metric] = max(spans.get(rule.metric, 0.0), farm.DRIFT_HISTORY_S)
        return spans.get(r.metric, 0.0)

    def windowed(self, blocks: list[Block], windows: Callable[[int, str], Arrays | None]) -> list[Event]:
        """Day-scale derived indices at each fresh reading of their inputs (``windows(node pk,
        metric)`` is the series' history including ``blocks``). Each index is computed for all the
        step's series at once (one numpy call per index and table)."""
        by_farm: dict[str, list[Rule]] = {}
        jobs: dict[tuple[str, str | None], list[_Job]] = {}  # (metric, model) -> series to compute
        for b in blocks:
            if not len(b.t) or self.window_span(b) == 0.0:  # no day-scale rule of the farm reads it
                continue
            if b.farm not in by_farm:
                by_farm[b.farm] = [
                    x for x in self.rules_for(b.farm) if x.kind == "threshold" and x.metric in WINDOWED
                ]
            rules = [
                x for x in by_farm[b.farm] if DERIVED[x.metric][0][0] == b.metric and x.applies_to(b.node)
            ]
            win = windows(b.node_pk, b.metric) if rules else None
            if win is None:
                continue
            for key in sorted({(x.metric, x.model) for x in rules}, key=str):
                mine = [x for x in rules if (x.metric, x.model) == key]
                jobs.setdefault(key, []).append(_Job(mine, b, win[0], win[1], b.t))
        events: list[Event] = []
        for (metric, model), items in jobs.items():
            for job, vals in zip(items, self._compute(metric, model, items, windows), strict=True):
                b = job.src
                for rule in job.rules:
                    ekey = episode_key(rule, b.farm, b.node, metric)
                    with np.errstate(invalid="ignore"):
                        hits = np.flatnonzero(rule.triggered(vals))  # type: ignore[arg-type]
                    if ekey in self.episodes or len(hits):
                        subj = (b.farm, b.node, b.node_pk, None, metric)
                        self._run(events, rule, subj, job.new_t, vals, hits, ekey)
        return events

    def derived(
        self,
        farm: str,
        node: str,
        pk: int | None,
        metric: str,
        t: float,
        value: float,
        note: str | None = None,
    ) -> list[Event]:
        """Step the farm's rules on the derived index ``metric`` of ``node`` (computed by the caller,
        e.g. imagery fusion across a farm's blocks) with one value."""
        events: list[Event] = []
        for rule in self.rules_for(farm):
            if rule.kind == "threshold" and rule.metric == metric and rule.applies_to(node):
                self._step(events, rule, farm, node, pk, None, metric, t, value)
        return [replace(e, note=note) for e in events] if note else events

    def _compute(
        self, metric: str, model: str | None, items: list[_Job], windows: Callable[[int, str], Arrays | None]
    ) -> list[np.ndarray]:
        """The index ``metric`` at each job's ``new_t`` (the newest readings of its window)."""
        if metric == "do_dawn":  # per pond: each night is its own fit
            out = []
            for j in items:
                site = self.site_for(j.src.farm)
                out.append(dawn_do_at_readings(
                    j.t, j.v, site.lat, site.lon, site.utc_offset_s, from_index=len(j.t) - len(j.new_t)
                ))  # fmt: skip
            return out
        if metric == "water_drop":  # every pen's same-hours totals, then one comparison
            totals = [same_hours_totals(j.t, j.v, j.new_t) for j in items]
            change = water_drop(np.vstack(totals))[0][:, -1]
            return np.split(change, np.cumsum([len(x) for x in totals])[:-1])
        # disease_risk: each node's leaf wetness with its air temperature at the same times, all
        # nodes in one NaN-padded wet_periods call
        aligned = []
        for j in items:
            temp = windows(j.src.node_pk, "air_t")
            if temp is None:
                aligned.append((np.empty(0), np.empty(0), np.empty(0)))
                continue
            common, iw, it = np.intersect1d(j.t, temp[0], assume_unique=True, return_indices=True)
            aligned.append((common, j.v[iw], temp[1][it]))
        width = max(1, max(len(a[0]) for a in aligned))
        tt, ww, aa = (np.full((len(items), width), np.nan) for _ in range(3))
        for k, (c, w, a) in enumerate(aligned):
            tt[k, : len(c)], ww[k, : len(c)], aa[k, : len(c)] = c, w, a
        assert model is not None  # validated: disease_risk rules name their table
        risk = wet_periods(tt, ww, aa, DISEASE_RULES[model]).risk.astype(np.float64)
        out = []
        for k, (j, (c, _, _)) in enumerate(zip(items, aligned, strict=True)):
            pos = np.minimum(np.searchsorted(c, j.new_t), max(len(c) - 1, 0))
            found = (len(c) > 0) & (c[pos] == j.new_t) if len(c) else np.zeros(len(j.new_t), dtype=bool)
            out.append(np.where(found, risk[k, pos], np.nan))
        return out

    def split(self, rows: list[Row]) -> tuple[list[Row], list[Row]]:
        """:meth:`split_blocks` for rows (series by series, time order): (ahead, behind)."""
        ahead: list[Row] = []
        behind: list[Row] = []
        s = 0
        for b in blocks_of(rows):
            k, e = self._split_at(b), s + len(b)
            behind += rows[s : s + k]
            ahead += rows[s + k : e]
            s = e
        return ahead, behind

    def split_blocks(self, blocks: list[Block]) -> tuple[list[Block], list[Block]]:
        """(readings newer than their series' watermark, advancing it; readings behind it).

        Readings come exactly once from the feed; one behind its series' watermark was committed
        after newer readings of the series (concurrent ingest workers). Both kinds go through the
        rules (an older reading never flips an episode), only the newer ones through anomaly
        scoring, whose state needs time order. A block's readings are in time order, so the ones
        behind are a prefix.
        """
        ahead: list[Block] = []
        behind: list[Block] = []
        for b in blocks:
            k = self._split_at(b)
            if k:
                behind.append(b if k == len(b) else b.part(slice(0, k)))
            if k < len(b):
                ahead.append(b if k == 0 else b.part(slice(k, None)))
        return ahead, behind

    def _split_at(self, b: Block) -> int:
        """How many of ``b``'s readings lie at or behind its series' watermark; advances it."""
        w = self.watermarks.get(b.series_id)
        k = 0 if w is None else int(np.searchsorted(b.t, w, side="right"))
        if k < len(b):
            self.watermarks[b.series_id] = float(b.t[-1])
            self.dirty_series.add(b.series_id)
        return k

    def feed(self, rows: list[Row]) -> list[Event]:
        """:meth:`feed_blocks` for rows (series by series, time order)."""
        return self.feed_blocks(blocks_of(rows))

    def feed_blocks(self, blocks: list[Block]) -> list[Event]:
        """Evaluate blocks (one series each, time order) through the threshold rules; return
        transitions. Series by series and columnar: a rule reads one column of the block, and the
        readings that cannot change its episode (before the condition first holds, or while it is
        neither active nor pending) are passed over as a whole (:meth:`_feed_series`)."""
        events: list[Event] = []
        thi_in: dict[int, list[Block]] = {}  # node pk -> its air_t and air_rh blocks
        by_farm: dict[str, list[Rule]] = {}
        by_metric: dict[tuple[str, str], list[Rule]] = {}
        nodes = self.nodes
        for b in blocks:
            if not len(b):
                continue
            self.evaluated += len(b)
            last_t = float(b.t.max())
            seen = nodes.get(b.node_pk)
            if seen is None:
                if b.sensor:
                    nodes[b.node_pk] = NodeSeen(b.farm, b.node, last_t)
            elif last_t > seen.last_t:
                seen.last_t = last_t
            key = (b.farm, b.metric)
            rules = by_metric.get(key)
            if rules is None:
                if b.farm not in by_farm:
                    by_farm[b.farm] = self.rules_for(b.farm)
                rules = by_metric[key] = [
                    x for x in by_farm[b.farm] if x.kind == "threshold" and x.metric == b.metric
                ]
            if rules:
                self._feed_series(events, b, rules)
            if b.metric in _THI_INPUTS:
                thi_in.setdefault(b.node_pk, []).append(b)
        if thi_in:
            self._derived(events, thi_in, by_farm)
        return events

    def _feed_series(self, events: list[Event], b: Block, rules: list[Rule]) -> None:
        """One series' readings through its threshold rules; transitions in time order (as if each
        reading had gone through every rule in turn)."""
        found: list[Event] = []
        for rule in rules:
            if not rule.applies_to(b.node):
                continue
            src = rule.source
            vals = (
                b.v if src == "value" else b.score if src == "anomaly"
                else b.farm_score if src == "farm_anomaly" else b.qc
            )  # fmt: skip
            if vals is None:  # none of the block's readings has that column
                continue
            with np.errstate(invalid="ignore"):
                hits = np.flatnonzero(rule.triggered(vals))  # type: ignore[arg-type]  # elementwise
            key = episode_key(rule, b.farm, b.node, b.metric)
            if key not in self.episodes and not len(hits):  # nothing to step: the condition never holds
                continue
            self._run(found, rule, (b.farm, b.node, b.node_pk, b.series_id, b.metric), b.t, vals, hits, key)
        if found:
            found.sort(key=_event_t)
            events.extend(found)

    def _run(
        self, found: list[Event], rule: Rule, subj: _Subject, t: np.ndarray, vals: np.ndarray,
        hits: np.ndarray, key: str,
    ) -> None:  # fmt: skip
        """Step ``rule``'s episode through ``vals`` (NaN: no value). Where the episode does not exist
        or is neither active nor pending, a reading that does not trigger can only move its
        ``last_t``/``last_value``: those stretches are applied at once (:meth:`_pass_over`)."""
        n = len(vals)
        tl: list[float] | None = None
        vl: list[float] = []
        k = 0
        while k < n:
            ep = self.episodes.get(key)
            if ep is None or (not ep.active and ep.pending is None):
                h = int(np.searchsorted(hits, k))
                nxt = int(hits[h]) if h < len(hits) else n
                if nxt > k:
                    if ep is not None:
                        self._pass_over(ep, key, t[k:nxt], vals[k:nxt])
                    k = nxt
                    continue
            if tl is None:
                tl, vl = t.tolist(), vals.tolist()
            v = vl[k]
            if v == v:
                self._step(found, rule, *subj, tl[k], v)
            k += 1

    def _pass_over(self, ep: Episode, key: str, t: np.ndarray, v: np.ndarray) -> None:
        """Readings none of which triggers, for an episode neither active nor pending: stepping each
        would only set ``last_t``/``last_value`` to the newest reading (with a value) newer than
        ``last_t``; the same, at once."""
        ok = np.flatnonzero(v == v)
        if not len(ok):
            return
        self.dirty.add(key)
        j = ok[int(np.argmax(t[ok]))]  # the first of the newest
        if t[j] > ep.last_t:
            ep.last_t, ep.last_value = float(t[j]), float(v[j])

    def _derived(
        self, events: list[Event], inputs: dict[int, list[Block]], by_farm: dict[str, list[Rule]]
    ) -> None:
        """THI from each node's air temperature and humidity at the same times, in time order."""
        steps: list[tuple[float, Block, float]] = []
        for blocks in inputs.values():
            b0 = blocks[0]
            if not any(x.metric == "thi" and x.kind == "threshold" for x in by_farm.get(b0.farm, [])):
                continue
            cols: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {}
            for b in blocks:
                ts, vs = cols.setdefault(b.metric, ([], []))
                ts.append(b.t)
                vs.append(b.v)
            if len(cols) < len(_THI_INPUTS):
                continue
            (ta, va), (th, vh) = (
                (np.concatenate(cols[m][0]), np.concatenate(cols[m][1])) for m in _THI_INPUTS
            )
            common, ia, ih = np.intersect1d(ta, th, return_indices=True)
            thi = thi_nrc1971(va[ia], vh[ih])
            thi_l = np.asarray(thi, dtype=np.float64).tolist()
            steps += [(t, b0, x) for t, x in zip(common.tolist(), thi_l, strict=True)]
        steps.sort(key=_first)
        for t, b, thi_v in steps:
            for rule in by_farm[b.farm]:
                if rule.metric == "thi" and rule.kind == "threshold" and rule.applies_to(b.node):
                    self._step(events, rule, b.farm, b.node, b.node_pk, None, "thi", t, thi_v)

    def tick(self, now: float) -> list[Event]:
        """Clock rules: a node silent for its rule's intervals opens; a reading again closes it."""
        events: list[Event] = []
        for pk, seen in self.nodes.items():
            for rule in self.rules_for(seen.farm):
                if rule.kind == "silent" and rule.applies_to(seen.node):
                    self._step(events, rule, seen.farm, seen.node, pk, None, "", now, now - seen.last_t)
        return events

    def gateway_tick(self, now: float, board: GatewayBoard) -> list[Event]:
        """Gateway rules on a clock: out of touch (offline or no health) and spool backlog."""
        events: list[Event] = []
        for g, _, depth in board.values(now, 0.0):
            for rule in self.rules_for(g.farm):
                if rule.kind == "gateway":
                    age = next(a for x, a, _ in board.values(now, rule.threshold) if x is g)
                    self._step(events, rule, g.farm, g.gateway, None, None, "", now, age)
                elif rule.kind == "gateway_backlog":
                    self._step(events, rule, g.farm, g.gateway, None, None, "", now, depth)
        return events

    def _step(
        self, events: list[Event], rule: Rule, farm: str, node: str, pk: int | None, sid: int | None,
        metric: str, t: float, v: float,
    ) -> None:  # fmt: skip
        key = episode_key(rule, farm, node, metric)
        ep = self.episodes.get(key)
        if ep is None:
            ep = self.episodes[key] = Episode()
        before = (ep.active, ep.pending is not None)
        tr = step(rule, ep, t, v)
        if (
            rule.kind not in ("silent", "gateway")
            or tr is not None
            or before != (ep.active, ep.pending is not None)
        ):
            self.dirty.add(key)
        if tr is not None:
            events.append(
                Event(tr.kind, rule, farm, node, pk, sid, metric, tr.t, tr.since, tr.value, tr.peak)
            )
