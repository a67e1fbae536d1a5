"""The pure rule evaluator: one episode per (rule, subject), stepped by (time, value).

An episode becomes *active* once the condition has held for the rule's ``for_s`` (its start is the
first reading that met it) and ends when the value passes ``clear`` (hysteresis). A reading older
than the newest one seen does not move the episode: a backlog cannot flip the current state.
The gateway and the central alert service both step their episodes with :func:`step`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from kernel.rules.model import Rule


@dataclass(slots=True)
class Episode:
    active: bool = False
    since: float = 0.0  # first reading of the active (or pending) condition
    pending: float | None = None  # condition met since (not yet for for_s)
    last_t: float = float("-inf")
    last_value: float = 0.0
    peak: float = 0.0  # the worst value of the active episode

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        if d["last_t"] == float("-inf"):
            d["last_t"] = None
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Episode:
        d = dict(d)
        if d.get("last_t") is None:
            d["last_t"] = float("-inf")
        return cls(**d)


@dataclass(frozen=True, slots=True)
class Transition:
    kind: Literal["open", "close"]
    t: float  # the reading that made it
    since: float  # when the condition started (reading time)
    value: float
    peak: float


def step(rule: Rule, ep: Episode, t: float, value: float) -> Transition | None:
    """Advance ``ep`` by one reading; return the transition it caused, if any."""
    if t <= ep.last_t:
        return None
    ep.last_t, ep.last_value = t, value
    if not ep.active:
        if not rule.triggered(value):
            ep.pending = None
            return None
        if ep.pending is None:
            ep.pending = t
            ep.peak = value
        else:
            ep.peak = _worse(rule, ep.peak, value)
        if t - ep.pending < rule.for_s:
            return None
        ep.active, ep.since, ep.pending = True, ep.pending, None
        return Transition("open", t, ep.since, value, ep.peak)
    ep.peak = _worse(rule, ep.peak, value)
    if rule.cleared(value):
        ep.active = False
        return Transition("close", t, ep.since, value, ep.peak)
    return None


def _worse(rule: Rule, a: float, b: float) -> float:
    return min(a, b) if rule.op == "below" else max(a, b)
