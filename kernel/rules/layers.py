"""The layers a farm's effective rules are built from: the shipped defaults of its kind
(``kernel/rules/defaults/<kind>.toml``) < a deployment file < a farm file < the farm's override
stored through the API. Later layers replace rules by name; ``enabled = false`` switches one off."""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from importlib import resources

from kernel.catalog import FARM_KINDS
from kernel.rules.model import Rule, RuleSet, merge_rules, parse_rules


@cache
def default_rules(kind: str) -> RuleSet:
    if kind not in FARM_KINDS:
        raise ValueError(f"farm kind {kind!r} must be one of {', '.join(FARM_KINDS)}")
    path = resources.files("kernel.rules").joinpath("defaults", f"{kind}.toml")
    return parse_rules(path.read_text(encoding="utf-8"), "toml", f"kernel/rules/defaults/{kind}.toml")


def effective_rules(kind: str, *layers: Iterable[Rule]) -> list[Rule]:
    """The enabled rules of a farm of ``kind`` after its layers (each replaces rules by name)."""
    base = default_rules(kind).rules if kind in FARM_KINDS else ()
    return [r for r in merge_rules(base, *layers) if r.enabled]
