"""One rule language and one pure evaluator, shared by the gateway's local rules and the central
alert service: a farm's rule means the same at the edge and in the centre.

``model`` parses and validates rule files (TOML/JSON); ``evaluate`` steps an episode per
(rule, subject) through readings; both are pure (no I/O, clock passed in).
"""

from kernel.rules.evaluate import Episode, Transition, step
from kernel.rules.model import Rule, RulesError, RuleSet, load_rules, merge_rules, parse_rules

__all__ = [
    "Episode",
    "Rule",
    "RuleSet",
    "RulesError",
    "Transition",
    "load_rules",
    "merge_rules",
    "parse_rules",
    "step",
]
