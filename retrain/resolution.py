"""From stored label decisions to training targets: votes, conflicts and the category tree.

Rules of :func:`resolve`:

1. latest decision per labeller (the store holds only that one);
2. across labellers, a (product, category) with both positive and negative votes is a
   conflict (:func:`find_conflicts`, kept for review); the majority decides and a tie is not used;
3. a positive implies all its ancestors;
4. a negative implies all its descendants (not Shoes -> not Sneakers), never its ancestors;
5. a positive on a descendant overrides a negative on an ancestor (Sneakers: yes beats
   Shoes: no): the positive is the more specific judgement and, by the tree rule, already
   asserts the ancestor. The overridden negatives are reported in ``ProductLabels.overridden``.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from prodcat.taxonomy import Taxonomy

if TYPE_CHECKING:  # label_store.py imports this module; the record type is only needed for hints
    from retrain.label_store import HumanLabel

__all__ = ["Conflict", "ProductLabels", "Votes", "find_conflicts", "resolve", "tally"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Votes:
    """Who said yes and who said no to one (product, category)."""

    positive: frozenset[str]
    negative: frozenset[str]

    @property
    def outcome(self) -> Literal["positive", "negative", "tie"]:
        if len(self.positive) == len(self.negative):
            return "tie"
        return "positive" if len(self.positive) > len(self.negative) else "negative"


@dataclass(frozen=True)
class Conflict:
    """A (product, category) on which labellers disagree; ``outcome`` is what resolution used."""

    product_id: str
    category: str
    positive_labellers: tuple[str, ...]
    negative_labellers: tuple[str, ...]
    outcome: Literal["positive", "negative", "tie"]


@dataclass(frozen=True)
class ProductLabels:
    """Training targets of one product: categories known to apply and known not to apply."""

    positives: frozenset[str]
    negatives: frozenset[str]
    overridden: frozenset[str] = frozenset()  # majority negatives dropped for a positive descendant


def tally(labels: Iterable[HumanLabel]) -> dict[tuple[str, str], Votes]:
    """Votes per (product, category), counting only each labeller's latest decision."""
    latest: dict[tuple[str, str, str], HumanLabel] = {}
    for label in labels:
        k = (label.product_id, label.category, label.labeller)
        if k not in latest or label.labelled_at >= latest[k].labelled_at:  # same time: the later one, as in ES
            latest[k] = label
    pos: dict[tuple[str, str], set[str]] = defaultdict(set)
    neg: dict[tuple[str, str], set[str]] = defaultdict(set)
    for (product, category, labeller), label in latest.items():
        (pos if label.positive else neg)[(product, category)].add(labeller)
    return {k: Votes(frozenset(pos.get(k, ())), frozenset(neg.get(k, ()))) for k in pos.keys() | neg.keys()}


def find_conflicts(votes: dict[tuple[str, str], Votes]) -> list[Conflict]:
    """Every (product, category) with both positive and negative votes, sorted by product and category."""
    return [Conflict(p, c, tuple(sorted(v.positive)), tuple(sorted(v.negative)), v.outcome)
            for (p, c), v in sorted(votes.items()) if v.positive and v.negative]


def resolve(votes: dict[tuple[str, str], Votes], taxonomy: Taxonomy) -> dict[str, ProductLabels]:
    """Training targets per product (the rules are in the module docstring).

    Categories no longer in ``taxonomy`` are skipped with a warning; products left with no
    positive and no negative (all ties) are omitted.
    """
    direct_pos: dict[str, set[str]] = defaultdict(set)
    direct_neg: dict[str, set[str]] = defaultdict(set)
    unknown: set[str] = set()
    for (product, category), v in votes.items():
        if category not in taxonomy:
            unknown.add(category)
            continue
        if v.outcome == "positive":
            direct_pos[product].add(category)
        elif v.outcome == "negative":
            direct_neg[product].add(category)
    if unknown:
        log.warning("skipped labels of %d categories not in the taxonomy: %s", len(unknown), sorted(unknown)[:10])
    below: dict[str, tuple[str, ...]] = {}  # descendants per category, shared across products
    out: dict[str, ProductLabels] = {}
    for product in direct_pos.keys() | direct_neg.keys():
        positives = taxonomy.close(direct_pos.get(product, ()))
        kept = direct_neg.get(product, set()) - positives
        negatives = set(kept)
        for category in kept:
            if category not in below:
                below[category] = taxonomy.descendants(category)
            negatives.update(below[category])
        negatives -= positives  # a positive descendant of a negative: resolved above, so only a guard
        if positives or negatives:
            out[product] = ProductLabels(frozenset(positives), frozenset(negatives),
                                         frozenset(direct_neg.get(product, set()) & positives))
    return out
