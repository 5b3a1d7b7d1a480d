"""Training labels with no human: the rules and the semantic matcher, combined by the label model.

The rules label what their words reach; the semantic matcher (:mod:`models.semantic`) proposes a
category for products the rules may miss, including categories no rule ever labels; the label
model (:mod:`models.label_model`) weighs each source by how well it agrees with the others and
gives every (product, category) pair a probability. :func:`weak_labels` turns that into the hard
labels and per-entry weights ``train_ensemble`` takes (``prodcat train --labels weak``;
``benchmarks/weak_labels.py`` scores every step against the truth).

The matcher proposes only each product's single best category, so a category that is never
anyone's best (a sibling always outscored) would still get no label; :func:`seed_unlabelled`
gives each such category its few most similar products as low-weight positives, so no category
of the taxonomy is left without a training signal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models.label_model import (
    LabelModel,
    LabelSource,
    ancestor_consistent,
    descendant_sources,
    rule_sources,
    training_labels,
)
from models.labels import label_matrix
from models.semantic import SemanticMatcher
from prodcat.record import ProductRecord
from prodcat.rules import RuleMatch, RuleSet
from prodcat.taxonomy import Taxonomy

__all__ = ["DEFAULT_SEEDS", "WeakLabels", "seed_unlabelled", "semantic_sources", "weak_label_sources", "weak_labels"]

# Few on purpose: a category no source labels is a guess by similarity alone; five products give
# it a signal to learn from without letting the guess outweigh any source.
DEFAULT_SEEDS = 5


@dataclass(frozen=True)
class WeakLabels:
    """The label model's verdict on a catalogue: hard labels, per-entry weights and what produced them."""

    label_sets: list[set[str]]  # closed under ancestors
    weights: np.ndarray  # (n, C) float32: the probability that each hard label is right
    proba: np.ndarray  # (n, C) float32: the label model's posterior, ancestor-consistent
    sources: list[LabelSource]
    model: LabelModel
    seeded: list[str]  # categories no source labelled, given their most similar products
    matched: np.ndarray | None  # (n, C) bool: the matcher's own labels (None without a matcher)


def semantic_sources(matched: np.ndarray, taxonomy: Taxonomy) -> list[LabelSource]:
    """The matcher as one source per depth: it observes depth d on the products it matched that deep."""
    depth = np.array([taxonomy.depth(c) for c in taxonomy.ids])
    reach = np.where(matched.any(axis=1), (matched * depth).max(axis=1), 0)
    out = []
    for d in range(1, taxonomy.max_depth + 1):
        rows, columns = np.flatnonzero(reach >= d), np.flatnonzero(depth == d)
        if len(rows) and len(columns):
            out.append(LabelSource.from_matrix(f"semantic:depth{d}", matched, rows=rows, columns=columns,
                                               group=f"semantic:depth{d}"))
    return out


def weak_label_sources(matches: Sequence[RuleMatch], ruleset: RuleSet, taxonomy: Taxonomy,
                       matched: np.ndarray | None = None) -> list[LabelSource]:
    """Every rule (one source each), the matcher's matches ``matched`` (one source per depth) and
    the rules' votes carried up to ancestors (one source per depth)."""
    rules = rule_sources(matches, ruleset, taxonomy)
    direct = np.zeros((len(matches), len(taxonomy)), dtype=bool)  # each rule's vote on its own category
    for s in rules:
        direct[s.positive_rows, s.positive_columns] = True
    semantic = semantic_sources(matched, taxonomy) if matched is not None else []
    return rules + semantic + descendant_sources(direct, taxonomy)


def seed_unlabelled(y: np.ndarray, weights: np.ndarray, similarity: np.ndarray, taxonomy: Taxonomy, *,
                    per_category: int = DEFAULT_SEEDS, weight: float = 0.5) -> list[str]:
    """Label each category without a positive in ``y`` on its ``per_category`` most similar products
    (and their ancestors), each such entry weighing ``weight``; ``y`` and ``weights`` change in place.
    Returns the seeded categories."""
    empty = np.flatnonzero(~(y > 0.5).any(axis=0))
    seeded = []
    for c in empty:
        rows = np.argsort(-similarity[:, c], kind="stable")[:per_category]
        rows = rows[similarity[rows, c] > -1.0]  # -1: an empty text, nothing to go on
        if not len(rows):
            continue
        chain = [taxonomy.index(a) for a in (*taxonomy.ancestors(taxonomy.ids[c]), taxonomy.ids[c])]
        for j in chain:
            new = rows[y[rows, j] < 0.5]
            y[new, j], weights[new, j] = 1.0, weight
        seeded.append(taxonomy.ids[c])
    return seeded


def weak_labels(records: Sequence[ProductRecord], ruleset: RuleSet, taxonomy: Taxonomy, *,
                matcher: SemanticMatcher | None = None, prior_strength: float = 20.0,
                seeds: int = DEFAULT_SEEDS) -> WeakLabels:
    """Label ``records`` with the rules and ``matcher`` (unfitted: it is fitted and calibrated on
    these records against the rule labels), combined by a :class:`LabelModel`; with a matcher,
    categories still without a label get ``seeds`` products each (:func:`seed_unlabelled`).
    No truth is read."""
    matches = ruleset.apply_many(records)
    matched = similarity = None
    if matcher is not None:
        rule_y = label_matrix([m.labels for m in matches], taxonomy)
        similarity = matcher.fit(taxonomy, records=records, rule_labels=rule_y).similarity(records)
        matched = matcher.decide(similarity)
        if not matcher.calibrated_:  # no evidence it beats the rules where they fire (models.semantic)
            matched[rule_y.any(axis=1)] = False
    sources = weak_label_sources(matches, ruleset, taxonomy, matched)
    model = LabelModel(prior_strength=prior_strength).fit(sources, (len(records), len(taxonomy)))
    proba = ancestor_consistent(model.predict_proba(), taxonomy)
    y, weights = training_labels(proba)
    assert weights.sample_weight is not None  # training_labels always weighs every entry
    entry_weights = weights.sample_weight
    seeded = [] if similarity is None or seeds <= 0 else seed_unlabelled(y, entry_weights, similarity, taxonomy,
                                                                        per_category=seeds)
    return WeakLabels(label_sets=taxonomy.from_matrix(y > 0.5), weights=entry_weights, proba=proba,
                      sources=sources, model=model, seeded=seeded, matched=matched)
