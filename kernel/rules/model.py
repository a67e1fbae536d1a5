"""The rule language (TOML or JSON), validated; a mistake is one line naming file, rule and key.

Example::

    max_reading_age_s = 900          # the gateway ignores readings older than this (a backlog)

    [[rules]]
    name = "barn-heat"
    metric = "thi"                   # a catalog metric or a derived index (see DERIVED)
    above = 79                       # fires when THI > 79 ...
    clear = 77                       # ... resolves once THI <= 77 (hysteresis)
    for_s = 900                      # ... and only after it held for 15 minutes
    nodes = ["barn-1", "barn-2"]     # default: every node of the farm
    cooldown_s = 900                 # no new alert for this rule and node within 15 min of the last
    severity = "critical"

    [[rules]]
    name = "sensor-anomaly"
    source = "anomaly"               # the anomaly score of the metric (0..1), not its value
    metric = "air_t"
    above = 0.9

    [[rules]]
    name = "dawn-oxygen"
    metric = "do_dawn"               # day-scale derived index: the pond's DO forecast at sunrise
    below = 3.0

    [[rules]]
    name = "node-silent"
    kind = "silent"                  # on a clock: no reading for `intervals` sampling intervals
    intervals = 3
    interval_s = 300

Kinds and sources:

- ``kind = "threshold"`` (default) with ``source``:
  ``value`` (the reading, or a derived index such as ``thi`` computed from air_t and air_rh of the
  same node and time), ``anomaly`` (the streaming anomaly score of that series, 0..1),
  ``farm_anomaly`` (the farm-level decision of ``analytics.anomaly.farm``: 1 where QC calls the
  reading faulty, 0 where farm context explains it -- soil moisture while or 2 h after it rains, a
  rain gauge, a daily counter's midnight rollover -- else the score; ``above = 0.38`` is the
  documented alert level) or ``qc`` (the QARTOD flag of the reading: 1 pass, 3 suspect, 4 fail;
  ``above = 3`` means "fail").
  Derived indices: ``thi`` (NRC 1971, air_t + air_rh), and over day-scale windows (``WINDOWED``):
  ``do_dawn`` (the dawn DO forecast from the night's decline, ``analytics.agro.dawn_do_at_readings``;
  by day the measured DO), ``disease_risk`` (the leaf-wetness x temperature risk level 0..3 of the
  current wet period, ``analytics.agro.wet_periods`` with the table ``model``) and ``water_drop``
  (drinking water of the last hours against the same hours of the previous days, a relative change,
  ``analytics.agro.water_drop_same_hours``); ``ndvi_fall`` (a field block's NDVI change against the
  farm's other blocks on each new satellite date: the robust z of ``analytics.imagery.fuse_blocks``,
  the alert naming its reading of the soil: likely water stress, likely disease, cause unclear).
- ``kind = "silent"``: the node sent nothing for ``intervals * interval_s`` seconds.
- ``kind = "gateway"``: a farm gateway is offline (its Last Will) or sent no health for
  ``intervals * interval_s`` seconds; its nodes' silence is attached to that one alert.
- ``kind = "gateway_backlog"``: a gateway's spool holds more than ``above`` messages.

The gateway evaluates only ``threshold`` rules on ``value`` of catalog metrics (it has no anomaly
state and no clock rules); the central alert service evaluates them all.
"""

from __future__ import annotations

import contextlib
import json
import re
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from analytics.agro.config import DISEASE_RULES, WATER_BASELINE_DAYS, WATER_SAME_HOURS_H
from kernel.catalog import CATALOG
from kernel.protocol import NodeId
from kernel.settings import error_line

_NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}\Z")

# Derived indices a rule may name as its metric: inputs (metrics of the same node and time) and
# the index's plausible range.
DERIVED: dict[str, tuple[tuple[str, ...], float, float, str]] = {
    "thi": (("air_t", "air_rh"), 0.0, 130.0, ""),
    "do_dawn": (("do_mgl",), 0.0, 25.0, "mg/L"),
    "disease_risk": (("leaf_wet", "air_t"), 0.0, 3.0, "level"),
    "water_drop": (("water_l",), -1.0, 10.0, "(relative change)"),
    # a field block's NDVI change against the farm's other blocks on the same satellite date (robust
    # z, analytics.imagery.fuse_blocks), on the block's pseudo node sat-<block>
    "ndvi_fall": (("ndvi_median",), -1000.0, 1000.0, "z"),
}
#: Derived indices over a day-scale window of their inputs' history: the seconds of history each
#: input series keeps (read back from the stored readings when the series is first seen).
WINDOWED: dict[str, float] = {
    "do_dawn": 16 * 3600.0,  # the night so far (sunset .. sunrise is at most ~15 h here)
    "disease_risk": 72 * 3600.0,  # a wet period (ends after a 2 h dry break)
    "water_drop": (WATER_BASELINE_DAYS * 24 + WATER_SAME_HOURS_H) * 3600.0,  # the same hours of 7 days
}
SOURCE_RANGES = {"anomaly": (0.0, 1.0), "farm_anomaly": (0.0, 1.0), "qc": (1.0, 9.0)}


class RulesError(ValueError):
    """The rules file is unusable; ``str()`` is one line naming the file, rule and field."""


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    kind: Literal["threshold", "silent", "gateway", "gateway_backlog"] = "threshold"
    source: Literal["value", "anomaly", "farm_anomaly", "qc"] = "value"
    metric: str = Field("", validate_default=True)
    above: float | None = None
    below: float | None = None
    clear: float | None = None
    for_s: float = Field(0.0, ge=0, le=7 * 86400)
    nodes: tuple[NodeId, ...] | None = None
    cooldown_s: float = Field(600.0, ge=0, le=7 * 86400)
    severity: Literal["critical", "warning", "info"] = "critical"
    when: Literal["uplink_down", "always"] = "uplink_down"  # gateway only: when it may notify
    message: str | None = Field(None, max_length=500)
    model: str | None = None  # disease_risk: the rule table of analytics.agro.DISEASE_RULES
    # a transition found in a reading older than this is late data (recorded, summarised, not sent);
    # default: the service's --late-after. Imagery arrives days after its acquisition by nature.
    late_after_s: float | None = Field(None, gt=0, le=366 * 86400)
    intervals: int = Field(3, ge=1, le=10_000)  # silent
    interval_s: float = Field(300.0, gt=0, le=86400)  # silent
    enabled: bool = True

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME_RE.match(v):
            raise ValueError("must be 1-64 letters, digits, '_', '.', '-'")
        return v

    @field_validator("metric")
    @classmethod
    def _metric(cls, v: str, info: ValidationInfo) -> str:
        if info.data.get("kind") in ("silent", "gateway", "gateway_backlog"):
            if v:
                raise ValueError(f"a {info.data.get('kind')!r} rule has no metric")
            return v
        if v not in CATALOG and v not in DERIVED:
            raise ValueError(f"unknown metric {v!r} (known: {', '.join([*CATALOG, *DERIVED])})")
        if v in DERIVED and info.data.get("source", "value") != "value":
            raise ValueError(f"derived index {v!r} has no {info.data.get('source')} of its own")
        return v

    @field_validator("nodes")
    @classmethod
    def _nodes(cls, v: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if v is not None and not v:
            raise ValueError("must list at least one node (omit it for every node)")
        return v

    @model_validator(mode="after")
    def _check(self) -> Rule:
        if self.metric == "disease_risk":
            if self.model not in DISEASE_RULES:
                raise ValueError(f"'model' must name a disease table: {', '.join(DISEASE_RULES)}")
        elif self.model is not None:
            raise ValueError("'model' is only for metric 'disease_risk'")
        if self.kind in ("silent", "gateway"):
            if self.above is not None or self.below is not None or self.clear is not None:
                raise ValueError(f"a {self.kind!r} rule takes 'intervals' and 'interval_s', not thresholds")
            return self
        if self.kind == "gateway_backlog" and self.above is None:
            raise ValueError("a 'gateway_backlog' rule needs 'above' (spooled messages)")
        if (self.above is None) == (self.below is None):
            raise ValueError("set exactly one of 'above' or 'below'")
        lo, hi, unit = self.value_range
        thr = self.threshold
        if not lo <= thr <= hi:
            m = self.metric
            what = f"{m}'s physical" if self.source == "value" else f"{self.source} of {m}'s"
            raise ValueError(f"threshold {thr:g} is outside {what} range [{lo:g}, {hi:g}] {unit}".rstrip())
        if self.clear is not None:
            if self.above is not None and self.clear > self.above:
                raise ValueError(f"'clear' ({self.clear:g}) must be <= 'above' ({self.above:g})")
            if self.below is not None and self.clear < self.below:
                raise ValueError(f"'clear' ({self.clear:g}) must be >= 'below' ({self.below:g})")
        return self

    @property
    def value_range(self) -> tuple[float, float, str]:
        if self.kind == "gateway_backlog":
            return 0.0, 1e12, "messages"
        if self.source in SOURCE_RANGES:
            lo, hi = SOURCE_RANGES[self.source]
            return lo, hi, ""
        if self.metric in DERIVED:
            _, lo, hi, unit = DERIVED[self.metric]
            return lo, hi, unit
        m = CATALOG[self.metric]
        return m.lo, m.hi, m.unit

    @property
    def threshold(self) -> float:
        if self.kind in ("silent", "gateway"):
            return self.intervals * self.interval_s
        v = self.above if self.above is not None else self.below
        assert v is not None
        return v

    @property
    def op(self) -> Literal["above", "below"]:
        return "below" if self.below is not None else "above"

    def triggered(self, v: float) -> bool:
        return v < self.threshold if self.below is not None else v > self.threshold

    def cleared(self, v: float) -> bool:
        if self.kind in ("silent", "gateway"):
            return v <= self.threshold
        c = self.clear if self.clear is not None else self.threshold
        return v >= c if self.below is not None else v <= c

    def applies_to(self, node: str) -> bool:
        return self.nodes is None or node in self.nodes


class RuleSet(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_reading_age_s: float = Field(900.0, gt=0)
    rules: tuple[Rule, ...]

    @model_validator(mode="after")
    def _unique(self) -> RuleSet:
        # (not Field(min_length=1): that adds a second, confusing error when one rule is invalid)
        if not self.rules:
            raise ValueError("rules: list at least one [[rules]] entry")
        seen: set[str] = set()
        for r in self.rules:
            if r.name in seen:
                raise ValueError(f"rule name {r.name!r} is used twice")
            seen.add(r.name)
        return self

    @property
    def active(self) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if r.enabled)


def merge_rules(*layers: Iterable[Rule]) -> list[Rule]:
    """Rules by name, later layers replacing earlier ones (defaults < deployment < farm)."""
    out: dict[str, Rule] = {}
    for layer in layers:
        for r in layer:
            out[r.name] = r
    return list(out.values())


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
