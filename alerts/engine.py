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

from collections.abc import Callable, Iterable
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


def _event_t(e: Event) -> float:
    return e.t


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
    """One series' part of a day-scale index computation: its rules, newest row, window, new times."""

    rules: list[Rule]
    r0: Row
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

    def window_span(self, r: Row) -> float:
        """Seconds of history ``r``'s series needs for the farm's day-scale derived rules (0: none)."""
        spans = self._spans.get(r.farm)
        if spans is None:
            spans = self._spans[r.farm] = {}
            for rule in self.rules_for(r.farm):
                if rule.kind == "threshold" and rule.metric in WINDOWED:
                    for m in DERIVED[rule.metric][0]:
                        spans[m] = max(spans.get(m, 0.0), WINDOWED[rule.metric])
        return spans.get(r.metric, 0.0)

    def windowed(self, rows: list[Row], windows: Callable[[int, str], Arrays | None]) -> list[Event]:
        """Day-scale derived indices at each fresh reading of their inputs (series by series, time
        order; ``windows(node pk, metric)`` is the series' history including ``rows``). Each index is
        computed for all the step's series at once (one numpy call per index and table)."""
        by_farm: dict[str, list[Rule]] = {}
        jobs: dict[tuple[str, str | None], list[_Job]] = {}  # (metric, model) -> series to compute
        start = 0
        for i in range(1, len(rows) + 1):
            if i < len(rows) and rows[i].series_id == rows[start].series_id:
                continue
            part, start = rows[start:i], i
            r0 = part[0]
            if self.window_span(r0) == 0.0:  # no day-scale rule of the farm reads this metric
                continue
            if r0.farm not in by_farm:
                by_farm[r0.farm] = [
                    x for x in self.rules_for(r0.farm) if x.kind == "threshold" and x.metric in WINDOWED
                ]
            rules = [
                x for x in by_farm[r0.farm] if DERIVED[x.metric][0][0] == r0.metric and x.applies_to(r0.node)
            ]
            win = windows(r0.node_pk, r0.metric) if rules else None
            if win is None:
                continue
            new_t = np.array([r.t for r in part])
            for key in sorted({(x.metric, x.model) for x in rules}, key=str):
                mine = [x for x in rules if (x.metric, x.model) == key]
                jobs.setdefault(key, []).append(_Job(mine, r0, win[0], win[1], new_t))
        events: list[Event] = []
        for (metric, model), items in jobs.items():
            for job, vals in zip(items, self._compute(metric, model, items, windows), strict=True):
                r0 = job.r0
                for rule in job.rules:
                    for tt, x in zip(job.new_t.tolist(), vals.tolist(), strict=True):
                        if x == x:
                            self._step(events, rule, r0.farm, r0.node, r0.node_pk, None, metric, tt, x)
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
                site = self.site_for(j.r0.farm)
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
            temp = windows(j.r0.node_pk, "air_t")
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

    def split(self, rows: Iterable[Row]) -> tuple[list[Row], list[Row]]:
        """(rows newer than their series' watermark, advancing it; rows behind it).

        Rows come exactly once from the feed; one behind its series' watermark was committed after
        newer readings of the series (concurrent ingest workers). Both kinds go through the rules
        (an older reading never flips an episode), only the newer ones through anomaly scoring,
        whose state needs time order.
        """
        ahead: list[Row] = []
        behind: list[Row] = []
        wm = self.watermarks
        for r in rows:
            w = wm.get(r.series_id)
            if w is not None and r.t <= w:
                behind.append(r)
                continue
            wm[r.series_id] = r.t
            self.dirty_series.add(r.series_id)
            ahead.append(r)
        return ahead, behind

    def feed(self, rows: list[Row]) -> list[Event]:
        """Evaluate fresh rows (see :meth:`fresh`), in series/time order; return transitions.

        Series by series: a rule whose episode does not exist yet skips the series' readings up to
        the first one that triggers it (most series trigger nothing, so most readings cost one
        comparison, not a step), then steps every reading from there.
        """
        events: list[Event] = []
        derived: dict[tuple[int, float], dict[str, Row]] = {}
        by_farm: dict[str, list[Rule]] = {}
        by_metric: dict[tuple[str, str], list[Rule]] = {}
        nodes = self.nodes
        n = len(rows)
        i = 0
        while i < n:
            r0 = rows[i]
            sid = r0.series_id
            j = i + 1
            while j < n and rows[j].series_id == sid:
                j += 1
            block = rows[i:j]
            i = j
            last_t = max(r.t for r in block)
            seen = nodes.get(r0.node_pk)
            if seen is None:
                if r0.sensor:
                    nodes[r0.node_pk] = NodeSeen(r0.farm, r0.node, last_t)
            elif last_t > seen.last_t:
                seen.last_t = last_t
            key = (r0.farm, r0.metric)
            rules = by_metric.get(key)
            if rules is None:
                if r0.farm not in by_farm:
                    by_farm[r0.farm] = self.rules_for(r0.farm)
                rules = by_metric[key] = [
                    x for x in by_farm[r0.farm] if x.kind == "threshold" and x.metric == r0.metric
                ]
            if rules:
                self._feed_series(events, block, rules)
            if r0.metric in ("air_t", "air_rh"):
                for r in block:
                    derived.setdefault((r.node_pk, r.t), {})[r.metric] = r
        self.evaluated += n
        if derived:
            self._derived(events, derived, by_farm)
        return events

    def _feed_series(self, events: list[Event], block: list[Row], rules: list[Rule]) -> None:
        """One series' readings (time order) through its threshold rules; transitions in time order."""
        r0 = block[0]
        episodes = self.episodes
        found: list[Event] = []
        for rule in rules:
            if not rule.applies_to(r0.node):
                continue
            src = rule.source
            vals: list[float | None]
            if src == "value":
                vals = [r.value for r in block]
            elif src == "anomaly":
                vals = [r.score for r in block]
            elif src == "farm_anomaly":
                vals = [r.farm_score for r in block]
            else:
                vals = [float(r.qc) if r.qc is not None else None for r in block]
            ekey = episode_key(rule, r0.farm, r0.node, r0.metric)
            start = 0
            if ekey not in episodes:  # nothing to step until the condition first holds
                thr = rule.threshold
                if rule.below is not None:
                    start = next((k for k, v in enumerate(vals) if v is not None and v < thr), -1)
                else:
                    start = next((k for k, v in enumerate(vals) if v is not None and v > thr), -1)
                if start < 0:
                    continue
            # from here an episode exists (episodes are never removed): step every reading
            for r, v in zip(block[start:], vals[start:], strict=True):
                if v is None or v != v:
                    continue
                self._step(found, rule, r0.farm, r0.node, r0.node_pk, r0.series_id, r0.metric, r.t, v)
        if found:
            found.sort(key=_event_t)  # as if each reading had gone through every rule in turn
            events.extend(found)

    def _derived(
        self,
        events: list[Event],
        pairs: dict[tuple[int, float], dict[str, Row]],
        by_farm: dict[str, list[Rule]],
    ) -> None:
        needs = DERIVED["thi"][0]
        for (pk, t), got in sorted(pairs.items(), key=lambda kv: kv[0][1]):
            if not all(m in got for m in needs):
                continue
            r = got["air_t"]
            rules = [x for x in by_farm.get(r.farm, []) if x.metric == "thi" and x.kind == "threshold"]
            if not rules:
                continue
            thi = float(thi_nrc1971(got["air_t"].value, got["air_rh"].value))
            for rule in rules:
                if rule.applies_to(r.node):
                    self._step(events, rule, r.farm, r.node, pk, None, "thi", t, thi)

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
