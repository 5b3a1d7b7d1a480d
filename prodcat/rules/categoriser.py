"""The legacy rules as a :class:`~prodcat.categoriser.Categoriser`."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np

from prodcat.categoriser import Categorisation, Categoriser
from prodcat.record import ProductRecord
from prodcat.rules.matching import (
    RuleSet,
)

# --------------------------------------------------------------------------------------------
# The categoriser
# --------------------------------------------------------------------------------------------


class RuleCategoriser(Categoriser):
    """The legacy system behind the :class:`~prodcat.categoriser.Categoriser` interface.

    Every label scores 1.0; the explanation maps each label to the rules that gave it or one of
    its descendants.
    """

    def __init__(self, ruleset: RuleSet, version: str | None = None) -> None:
        self.ruleset = ruleset
        self.taxonomy = ruleset.taxonomy
        self.version = version or f"rules-{ruleset.digest[:12]}"

    def categorise(self, record: ProductRecord) -> Categorisation:
        """Categorise one record."""
        taxonomy = self.ruleset.taxonomy
        match = self.ruleset.apply(record)
        explanation: dict[str, list[str]] = defaultdict(list)
        for rule_id, category in match.fired:
            for label in (*taxonomy.ancestors(category), category):
                if rule_id not in explanation[label]:
                    explanation[label].append(rule_id)
        categories = sorted(match.labels, key=taxonomy.index)
        return Categorisation(
            categories=categories,
            scores=dict.fromkeys(categories, 1.0),
            explanation={c: explanation[c] for c in categories},
        )

    def categorise_batch(self, records: Sequence[ProductRecord],
                         image_vectors: Mapping[str, np.ndarray] | None = None) -> list[Categorisation]:
        """Categorise each record (rules read text only); a failure raises, never "no category"."""
        return [self.categorise(record) for record in records]
