"""How much each training label counts: 1/p for human labels, and how far the rules can be trusted.

**Importance weights** (:func:`importance_weights`). The worker asked for each labelled product
with probability ``p`` (:mod:`prodcat.sampling`), so a labelled product stands for ``1/p``
arrivals. The weights are **self-normalised**: ``w_i = (1/p_i) / mean_j(1/p_j)`` over the
human-labelled products, mean 1. Why not raw ``1/p``: its scale is arrivals per label (thousands
at a high arrival rate), which says nothing about how a human label should weigh against a
rule label in one loss; self-normalising keeps only the relative correction that removes the
selection bias (the ratio / Hajek estimator ``sum(w y) / sum(w)``: consistent, bias of order
1/n, less variance than ``1/p`` itself), and the human-label weight sets the scale. Why not
clipping: clipping biases towards the over-sampled products, and it is not needed: the floor
``p_min`` already bounds ``max w / min w`` by about ``1/p_min``. A label without ``p`` (not
from a request, or older than the window) gets weight 1, the mean.

**Rule trust** (:class:`RuleTrust`): human labels show how far each rule can be trusted. Per
category ``c``, from the human-labelled products (each weighted by its importance weight, so
the estimates are about the stream, not about the doubtful products people were shown):

* ``precision[c]`` = P(truly c | a rule says c): the rule's (the label source's) precision;
* ``recall[c]`` = P(a rule says c | truly c): the rule's recall;
* ``frequency[c]`` = P(truly c).

Each is shrunk towards its value pooled over all categories (a Beta prior of strength
``prior`` pseudo-labels), so a category with two labels does not swing to 0 or 1. Rule-derived
entries of the training matrix are then weighted by how likely they are to be right:
a rule positive by ``precision[c]``, a rule zero by ``1 - P(c | rule silent)`` with
``P(c | silent) = frequency[c] * (1 - recall[c]) / (1 - rule_rate[c])`` (Bayes, ``rule_rate`` the
share of all products the rules put in ``c``). Entries a person decided weigh 1. That is the
whole correction: a rule that is right half the time teaches half as hard, a category the
rules miss often has its rule zeros discounted; nothing is relabelled.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from prodcat.errors import DataError
from prodcat.taxonomy import Taxonomy
from retrain.resolution import ProductLabels

if TYPE_CHECKING:  # only the type: retrain.job stays free of the Elasticsearch client
    from retrain.label_store import HumanLabel

__all__ = ["RuleTrust", "decided_matrix", "importance_weights", "label_probabilities"]


def label_probabilities(labels: Iterable[HumanLabel]) -> dict[str, float | None]:
    """Per labelled product, the ``p`` it was asked with (the largest among its labels; None if none has one).

    The largest, because the product was labelled if ANY of its requests was drawn, which is at
    least as likely as its likeliest request.
    """
    out: dict[str, float | None] = {}
    for label in labels:
        known = out.get(label.product_id)
        if label.p is not None and (known is None or label.p > known):
            out[label.product_id] = label.p
        else:
            out.setdefault(label.product_id, None)
    return out


def importance_weights(p_by_product: Mapping[str, float | None]) -> dict[str, float]:
    """Self-normalised ``1/p`` per product (mean 1 over those with a ``p``); 1 for those without."""
    inverse = {pid: 1.0 / p for pid, p in p_by_product.items() if p is not None}
    bad = {pid: p for pid, p in p_by_product.items() if p is not None and not 0 < p <= 1}
    if bad:
        raise DataError(f"Expected probabilities in (0, 1]. Received: {dict(list(bad.items())[:3])}; "
                        "the label store keeps only p from the worker's requests")
    mean = float(np.mean(list(inverse.values()))) if inverse else 1.0
    return {pid: inverse[pid] / mean if pid in inverse else 1.0 for pid in p_by_product}


def _decided(human: ProductLabels, taxonomy: Taxonomy) -> tuple[set[str], set[str]]:
    positives = taxonomy.close(human.positives)
    return positives, set(human.negatives) - positives


@dataclass(frozen=True)
class RuleTrust:
    """Per category (taxonomy column order): the rules' precision and recall, and the category's frequency."""

    precision: np.ndarray
    recall: np.ndarray
    frequency: np.ndarray
    rule_rate: np.ndarray
    evidence: np.ndarray  # weighted human-decided entries behind each category's estimates

    @classmethod
    def estimate(cls, rule_labels: Mapping[str, set[str]], human: Mapping[str, ProductLabels],
                 weights: Mapping[str, float], taxonomy: Taxonomy, *, prior: float = 2.0) -> RuleTrust:
        """From the products people labelled (``weights``: their importance weights, default 1).

        ``rule_labels`` covers every product (the rule rates are measured on all of them).
        """
        if prior <= 0:
            raise DataError(f"Expected prior > 0 (pseudo-labels of the shrinkage). Received: prior={prior}")
        n_cat = len(taxonomy)
        ids = list(rule_labels)
        rule_rate = (taxonomy.to_matrix([taxonomy.close(rule_labels[pid]) for pid in ids]).mean(axis=0)
                     if ids else np.zeros(n_cat))
        tp, fired, true_pos, decided, weighted_true = (np.zeros(n_cat) for _ in range(5))
        for pid, labels in human.items():
            w = float(weights.get(pid, 1.0))
            positives, negatives = _decided(labels, taxonomy)
            known = np.zeros(n_cat, dtype=bool)
            truth = np.zeros(n_cat, dtype=bool)
            for c in positives | negatives:
                if c in taxonomy:
                    known[taxonomy.index(c)] = True
                    truth[taxonomy.index(c)] = c in positives
            said = np.zeros(n_cat, dtype=bool)
            for c in taxonomy.close(rule_labels.get(pid, set())):
                said[taxonomy.index(c)] = True
            tp += w * (said & truth)
            fired += w * (said & known)
            true_pos += w * truth
            decided += w * known
            weighted_true += w * truth
        pooled_precision = (tp.sum() + 1) / (fired.sum() + 2)  # Laplace: no labels at all -> 1/2
        pooled_recall = (tp.sum() + 1) / (true_pos.sum() + 2)
        pooled_frequency = (weighted_true.sum() + 1) / (decided.sum() + 2)
        precision = (tp + prior * pooled_precision) / (fired + prior)
        recall = (tp + prior * pooled_recall) / (true_pos + prior)
        frequency = (weighted_true + prior * pooled_frequency) / (decided + prior)
        return cls(precision, recall, frequency, rule_rate, decided)

    def silent_positive_rate(self) -> np.ndarray:
        """(C,) P(truly c | the rules do not say c): how often a rule zero is wrong."""
        silent = np.clip(1.0 - self.rule_rate, 1e-9, None)
        return np.clip(self.frequency * (1.0 - self.recall) / silent, 0.0, 1.0)

    def entry_weights(self, y: np.ndarray, decided: np.ndarray) -> np.ndarray:
        """(n, C) float32: 1 where a person decided, else ``precision`` for a 1 and ``1 - P(c | silent)`` for a 0."""
        y, decided = np.asarray(y) > 0.5, np.asarray(decided, dtype=bool)
        if y.shape != decided.shape or y.ndim != 2 or y.shape[1] != len(self.precision):
            raise DataError(f"Expected y and decided of one shape (n, {len(self.precision)}). "
                            f"Received: {y.shape} and {decided.shape}")
        rule = np.where(y, self.precision[None, :], 1.0 - self.silent_positive_rate()[None, :])
        return np.where(decided, 1.0, rule).astype(np.float32)

    def summary(self, taxonomy: Taxonomy, top: int = 5) -> dict[str, object]:
        """The least trusted rules, for the round's report."""
        order = np.argsort(self.precision)[:top]
        return {"mean_precision": float(self.precision.mean()), "mean_recall": float(self.recall.mean()),
                "least_precise": {taxonomy.id_at(int(i)): round(float(self.precision[i]), 3) for i in order}}


def decided_matrix(product_ids: Sequence[str], human: Mapping[str, ProductLabels], taxonomy: Taxonomy) -> np.ndarray:
    """(n, C) bool: the entries a person decided (positives closed under ancestors, and negatives)."""
    out = np.zeros((len(product_ids), len(taxonomy)), dtype=bool)
    for row, pid in enumerate(product_ids):
        if pid in human:
            positives, negatives = _decided(human[pid], taxonomy)
            cols = [taxonomy.index(c) for c in positives | negatives if c in taxonomy]
            out[row, cols] = True
    return out
