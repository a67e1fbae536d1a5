"""The alert service's rules: shipped defaults per farm kind < the deployment's file < a farm's file
< the farm's override stored through the API (``store.farm_rules``, reloaded when it changes).

Layers replace rules by name (``enabled = false`` switches one off). Farm files live in a directory,
one ``<farm-id>.toml`` each. Every file is validated at start; a malformed one stops the service
with one line naming the file, the rule and the key (:class:`kernel.rules.RulesError`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from kernel.catalog import FARM_KINDS
from kernel.rules import Rule, RulesError, RuleSet, load_rules, merge_rules
from kernel.rules.layers import default_rules
from store import farm_rules


@dataclass
class RuleBook:
    deployment: RuleSet | None = None
    farms: dict[str, RuleSet] = field(default_factory=dict)
    overrides: dict[str, RuleSet] = field(default_factory=dict)  # stored through the API (store.farm_rules)
    overrides_version: object = None
    defaults: dict[str, RuleSet] = field(default_factory=dict)

    @classmethod
    def load(cls, deployment: Path | None = None, farm_dir: Path | None = None) -> RuleBook:
        book = cls(defaults={k: default_rules(k) for k in FARM_KINDS})
        if deployment is not None:
            book.deployment = load_rules(deployment)
        if farm_dir is not None:
            if not farm_dir.is_dir():
                raise RulesError(f"{farm_dir}: not a directory of <farm-id>.toml files")
            for p in sorted(farm_dir.glob("*.toml")):
                book.farms[p.stem] = load_rules(p)
        return book

    def refresh_overrides(self, conn: psycopg.Connection[Any]) -> None:
        """Reload the farms' overrides stored through the API when one was put or deleted."""
        v = farm_rules.version(conn)
        if v != self.overrides_version:
            self.overrides, self.overrides_version = farm_rules.load_all(conn), v

    def rules(self, farm: str, kind: str) -> list[Rule]:
        layers = [self.defaults[kind].rules if kind in self.defaults else ()]
        if self.deployment is not None:
            layers.append(self.deployment.rules)
        for by_farm in (self.farms, self.overrides):
            if farm in by_farm:
                layers.append(by_farm[farm].rules)
        return [r for r in merge_rules(*layers) if r.enabled]
