"""Local critical rules: thresholds that must alert at the farm even while the uplink is down.

The rules file (TOML or JSON) is validated at start; a mistake stops the gateway with one line
naming the file, the rule and the field. Example (TOML)::

    max_reading_age_s = 900          # ignore readings older than this (a node's backlog)

    [[rules]]
    name = "barn-heat"
    metric = "air_t"
    above = 32.0                     # fires when air_t > 32 °C
    clear = 30.5                     # ... and re-arms only once it is <= 30.5 °C (hysteresis)
    nodes = ["barn-1", "barn-2"]     # default: every node of the farm
    cooldown_s = 900                 # at most one notification per rule and node per 15 min

    [[rules]]
    name = "pond-oxygen"
    metric = "do_mgl"
    below = 3.0

The engine is pure (clock passed in): per (rule, node) an *episode* starts when the condition
holds and ends when the value passes ``clear``. An episode is notified at most once, only when
allowed (``when = "uplink_down"``, the default, means only while central cannot alert), and not
within ``cooldown_s`` of the previous notification for that rule and node; an episode that could
not be notified yet (uplink up, cooldown) is notified as soon as it may be.
"""

from __future__ import annotations

import contextlib
import json
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from kernel.catalog import CATALOG
from kernel.protocol import NodeId, Reading
from kernel.settings import error_line

_NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}\Z")


class RulesError(ValueError):
    """The rules file is unusable; ``str()`` is one line naming the file, rule and field."""


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    metric: str
    above: float | None = None
    below: float | None = None
    clear: float | None = None
    nodes: tuple[NodeId, ...] | None = None
    cooldown_s: float = Field(600.0, ge=0, le=7 * 86400)
    severity: Literal["critical", "warning", "info"] = "critical"
    when: Literal["uplink_down", "always"] = "uplink_down"
    message: str | None = Field(None, max_length=500)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME_RE.match(v):
            raise ValueError("must be 1-64 letters, digits, '_', '.', '-'")
        return v

    @field_validator("metric")
    @classmethod
    def _metric(cls, v: str) -> str:
        if v not in CATALOG:
            raise ValueError(f"unknown metric {v!r} (known: {', '.join(CATALOG)})")
        return v

    @field_validator("nodes")
    @classmethod
    def _nodes(cls, v: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if v is not None and not v:
            raise ValueError("must list at least one node (omit it for every node)")
        return v

    @model_validator(mode="after")
    def _threshold(self) -> Rule:
        if (self.above is None) == (self.below is None):
            raise ValueError("set exactly one of 'above' or 'below'")
        m = CATALOG[self.metric]
        thr = self.threshold
        if not m.in_range(thr):
            raise ValueError(
                f"threshold {thr:g} is outside {self.metric}'s physical range [{m.lo:g}, {m.hi:g}] {m.unit}"
            )
        if self.clear is not None:
            if self.above is not None and self.clear > self.above:
                raise ValueError(f"'clear' ({self.clear:g}) must be <= 'above' ({self.above:g})")
            if self.below is not None and self.clear < self.below:
                raise ValueError(f"'clear' ({self.clear:g}) must be >= 'below' ({self.below:g})")
        return self

    @property
    def threshold(self) -> float:
        v = self.above if self.above is not None else self.below
        assert v is not None
        return v

    @property
    def op(self) -> Literal["above", "below"]:
        return "above" if self.above is not None else "below"

    def triggered(self, v: float) -> bool:
        return v > self.threshold if self.above is not None else v < self.threshold

    def cleared(self, v: float) -> bool:
        c = self.clear if self.clear is not None else self.threshold
        return v <= c if self.above is not None else v >= c

    def applies_to(self, node: str) -> bool:
        return self.nodes is None or node in self.nodes


class RuleSet(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_reading_age_s: float = Field(900.0, gt=0)
    rules: tuple[Rule, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> RuleSet:
        seen: set[str] = set()
        for r in self.rules:
            if r.name in seen:
                raise ValueError(f"rule name {r.name!r} is used twice")
            seen.add(r.name)
        return self


def _loc(loc: tuple[int | str, ...], data: Any) -> str:
    parts: list[str] = []
    for i, p in enumerate(loc):
        if isinstance(p, int):
            parts[-1] += f"[{p}]"
            if i == 1 and loc[0] == "rules":
                with contextlib.suppress(KeyError, IndexError, TypeError):
                    parts[-1] += f" ({data['rules'][p]['name']!r})"
        else:
            parts.append(str(p))
    return ".".join(parts)


def parse_rules(text: str, fmt: Literal["toml", "json"], source: str = "rules") -> RuleSet:
    try:
        data: Any = tomllib.loads(text) if fmt == "toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        raise RulesError(f"{source}: not valid {fmt.upper()}: {exc}") from None
    try:
        return RuleSet.model_validate(data)
    except ValidationError as exc:
        raise RulesError(f"{source}: " + error_line(exc, where=lambda loc: _loc(loc, data))) from None


def load_rules(path: Path) -> RuleSet:
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".json"):
        raise RulesError(f"{path}: rules file must end in .toml or .json")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError(f"{path}: cannot read: {exc}") from None
    return parse_rules(text, "toml" if suffix == ".toml" else "json", str(path))


@dataclass(slots=True)
class _Episode:
    active: bool = False
    since: float = 0.0
    notified: bool = False
    last_value: float = 0.0
    last_t: float = 0.0
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


class RuleEngine:
    def __init__(self, ruleset: RuleSet) -> None:
        self.ruleset = ruleset
        self._by_metric: dict[str, list[Rule]] = {}
        for r in ruleset.rules:
            self._by_metric.setdefault(r.metric, []).append(r)
        self._episodes: dict[tuple[str, str], _Episode] = {}

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
                ep = self._episodes.setdefault((rule.name, rd.node), _Episode())
                if rd.t < ep.last_t:
                    continue  # an older reading (backlog) must not flip the current state
                ep.last_value, ep.last_t = rd.value, rd.t
                if not ep.active and rule.triggered(rd.value):
                    ep.active, ep.since, ep.notified = True, rd.t, False
                elif ep.active and rule.cleared(rd.value):
                    ep.active = False
                n = self._maybe_notify(rule, rd.node, ep, uplink_up, now)
                if n is not None:
                    out.append(n)
        return out

    def poll(self, uplink_up: bool, now: float) -> list[Notification]:
        """Notify active episodes that could not be notified before (uplink was up, cooldown)."""
        out: list[Notification] = []
        rules = {r.name: r for r in self.ruleset.rules}
        for (name, node), ep in self._episodes.items():
            if ep.last_t < now - self.ruleset.max_reading_age_s:
                continue  # no fresh reading: the node may be gone; do not alert on stale data
            n = self._maybe_notify(rules[name], node, ep, uplink_up, now)
            if n is not None:
                out.append(n)
        return out

    @staticmethod
    def _maybe_notify(
        rule: Rule, node: str, ep: _Episode, uplink_up: bool, now: float
    ) -> Notification | None:
        if not ep.active or ep.notified:
            return None
        if rule.when == "uplink_down" and uplink_up:
            return None
        if ep.last_notified is not None and now - ep.last_notified < rule.cooldown_s:
            return None
        ep.notified = True
        ep.last_notified = now
        return Notification(rule, node, ep.last_value, ep.last_t, ep.since)
