"""The colour a node, gateway or farm gets on the map: ok / warning / alert / offline (pure rules)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

State = Literal["ok", "warning", "alert", "offline"]
STATES: tuple[State, ...] = ("ok", "warning", "alert", "offline")
#: Map and badge colours (colour-blind safe order: green, amber, red, grey).
COLOURS: dict[str, str] = {"ok": "#2e9d5b", "warning": "#e6a100", "alert": "#d7263d", "offline": "#8a8f98"}
BATTERY_LOW_V = 3.4  # a Li-ion cell under load below this has hours, not days, left


def node_state(
    age_s: float | None,
    *,
    offline_after_s: float,
    battery_v: float | None = None,
    critical: int = 0,
    warning: int = 0,
) -> State:
    """Offline when silent too long (or never heard); alert/warning from its open alerts or battery."""
    if age_s is None or age_s > offline_after_s:
        return "offline"
    if critical:
        return "alert"
    if warning or (battery_v is not None and battery_v < BATTERY_LOW_V):
        return "warning"
    return "ok"


def uplink_state(age_s: float | None, *, offline_after_s: float) -> str:
    """A gateway's uplink: ``up``, ``down`` (silent too long) or ``never`` (no batch ever arrived)."""
    if age_s is None:
        return "never"
    return "down" if age_s > offline_after_s else "up"


def farm_state(node_states: Iterable[str], *, critical: int, warning: int) -> State:
    """Alert if a critical alert is open; offline if every node is; warning on any other trouble."""
    states = list(node_states)
    if critical:
        return "alert"
    if states and all(s == "offline" for s in states):
        return "offline"
    if warning or any(s != "ok" for s in states):
        return "warning"
    return "ok"
