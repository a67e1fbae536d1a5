"""Local critical rules: thresholds that must alert at the farm even while the uplink is down.

The rule language and the evaluator are the kernel's (``kernel.rules``), the same the central alert
service uses, so a farm's rule means the same here and there. The rules file is validated at start;
a mistake stops the gateway with one line naming the file, the rule and the field. The gateway
evaluates ``threshold`` rules on catalog metrics' values; other rule kinds (anomaly, QC, silent,
derived indices) are the central service's and are skipped here.

This module adds the edge's notification policy around the evaluator: an episode is notified at most
once, only when allowed (``when = "uplink_down"``, the default, means only while central cannot
alert), and not within ``cooldown_s`` of the previous notification for that rule and node; an
episode that could not be notified yet (uplink up, cooldown) is notified as soon as it may be.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kernel.catalog import CATALOG
from kernel.protocol import Reading
from kernel.rules import Episode, Rule, RulesError, RuleSet, load_rules, parse_rules, step

__all__ = ["Notification", "Rule", "RuleEngine", "RuleSet", "RulesError", "load_rules", "parse_rules"]


@dataclass(slots=True)
class _Local:
    ep: Episode
    notified: bool = False
    last_notified: float | None = None


@dataclass(frozen=True, slots=True)
class Notification:
    rule: Rule
    node: str
    value: float
    t: float  # time of the reading that fired
    since: float  # when the episode started (reading time)

    def body(self, farm: str, gateway: str, now: float, uplink: str) -> dict[str, Any]:
        m = CATALOG[self.rule.metric]
        return {
            "v": 1,
            "event": "local_alert",
            "farm": farm,
            "gateway": gateway,
            "rule": self.rule.name,
            "severity": self.rule.severity,
            "message": self.rule.message,
            "node": self.node,
            "metric": self.rule.metric,
            "unit": m.unit,
            "value": self.value,
            "op": self.rule.op,
            "threshold": self.rule.threshold,
            "reading_time": self.t,
            "since": self.since,
            "fired_at": now,
            "uplink": uplink,
        }


def edge_rules(ruleset: RuleSet) -> list[Rule]:
    """The rules a gateway can evaluate: value thresholds on catalog metrics."""
    return [
        r for r in ruleset.active if r.kind == "threshold" and r.source == "value" and r.metric in CATALOG
    ]


class RuleEngine:
    def __init__(self, ruleset: RuleSet) -> None:
        self.ruleset = ruleset
        self.rules = edge_rules(ruleset)
        self._by_metric: dict[str, list[Rule]] = {}
        for r in self.rules:
            self._by_metric.setdefault(r.metric, []).append(r)
        self._episodes: dict[tuple[str, str], _Local] = {}

    def observe(self, readings: Iterable[Reading], uplink_up: bool, now: float) -> list[Notification]:
        """Feed valid readings; return the notifications to send now."""
        out: list[Notification] = []
        min_t = now - self.ruleset.max_reading_age_s
        for rd in readings:
            rules = self._by_metric.get(rd.metric)
            if not rules or rd.t < min_t:
                continue
            for rule in rules:
                if not rule.applies_to(rd.node):
                    continue
                loc = self._episodes.setdefault((rule.name, rd.node), _Local(Episode()))
                tr = step(rule, loc.ep, rd.t, rd.value)
                if tr is not None and tr.kind == "open":
                    loc.notified = False
                n = self._maybe_notify(rule, rd.node, loc, uplink_up, now)
                if n is not None:
                    out.append(n)
        return out

    def poll(self, uplink_up: bool, now: float) -> list[Notification]:
        """Notify active episodes that could not be notified before (uplink was up, cooldown)."""
        out: list[Notification] = []
        rules = {r.name: r for r in self.rules}
        for (name, node), loc in self._episodes.items():
            if loc.ep.last_t < now - self.ruleset.max_reading_age_s:
                continue  # no fresh reading: the node may be gone; do not alert on stale data
            n = self._maybe_notify(rules[name], node, loc, uplink_up, now)
            if n is not None:
                out.append(n)
        return out

    @staticmethod
    def _maybe_notify(rule: Rule, node: str, loc: _Local, uplink_up: bool, now: float) -> Notification | None:
        if not loc.ep.active or loc.notified:
            return None
        if rule.when == "uplink_down" and uplink_up:
            return None
        if loc.last_notified is not None and now - loc.last_notified < rule.cooldown_s:
            return None
        loc.notified = True
        loc.last_notified = now
        return Notification(rule, node, loc.ep.last_value, loc.ep.last_t, loc.ep.since)
