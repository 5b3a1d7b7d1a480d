"""The legacy rules: matching records (``matching``), as a categoriser (``categoriser``), and a
starter rule set generated from category names (``generation``). See :mod:`prodcat.rules.matching`
for the YAML format.
"""

from prodcat.rules.categoriser import RuleCategoriser
from prodcat.rules.generation import GENERIC_NAMES, generate_rules
from prodcat.rules.matching import Condition, Rule, RuleMatch, RuleSet

__all__ = ["GENERIC_NAMES", "Condition", "Rule", "RuleCategoriser", "RuleMatch", "RuleSet", "generate_rules"]
