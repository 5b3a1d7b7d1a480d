"""Self-training across views: a model's confident predictions become labels for the next fit.

The weak labels (:mod:`models.weak_labels`) leave pairs no source voted for: products the rules
and the matcher missed, and categories below the deepest label a product got. After a first fit,
the pairs the model predicts with high confidence on such entries become training labels, and the
model is fitted again: bounded rounds, and precision first (a pair is added only above both the
category's tuned threshold and ``min_probability``).

The predictions are the fit's **out-of-fold** probabilities (``train_ensemble(keep_oof=True)``:
each row predicted by member copies that never saw it, through the fitted combiner), so a model
is never asked to confirm the labels it was just fitted on.

With several *views* (member lists reading different inputs, e.g. the text members and the
image head on a catalogue with photos) every view is fitted each round and the confident pairs of
all views join one pool, so the text model's labels teach the image view in the next round and
the image model's teach the text view (co-training with a shared pool). One view is plain
self-training.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from models.classifier import Classifier
from models.errors import ConfigError, DataError
from prodcat.taxonomy import Taxonomy

__all__ = ["Fit", "SelfTraining", "SelfTrainingRound", "confident_pairs", "self_train"]

# (label sets, per-entry weights, members) -> a classifier trained with keep_oof=True
Fit = Callable[[list[set[str]], np.ndarray, Sequence[str]], Classifier]


@dataclass(frozen=True)
class SelfTrainingRound:
    """What one round added: pairs per view and in total, on how many products."""

    round: int
    added_pairs: int
    added_products: int
    per_view: dict[str, int]


@dataclass(frozen=True)
class SelfTraining:
    """The labels after the last round (closed under ancestors), their per-entry weights and each round's additions."""

    label_sets: list[set[str]]
    weights: np.ndarray
    added: np.ndarray  # (n, C) bool: the pairs self-training added, over all rounds
    rounds: list[SelfTrainingRound]


def oof_proba(classifier: Classifier) -> np.ndarray:
    """The combined out-of-fold probabilities of every training row (needs ``keep_oof=True``)."""
    oof = getattr(classifier, "oof_", None)
    if oof is None:
        raise ConfigError("Expected a classifier trained with keep_oof=True (self-training reads its out-of-fold "
                          "probabilities). Received: one without oof_.")
    return np.asarray(classifier.combiner.predict_proba(list(np.nan_to_num(oof.member_probs))), dtype=np.float32)


def confident_pairs(proba: np.ndarray, thresholds: np.ndarray, labelled: np.ndarray, taxonomy: Taxonomy, *,
                    min_probability: float) -> np.ndarray:
    """(n, C) bool: unlabelled entries predicted at or above both the category's threshold and
    ``min_probability``, kept only where the category's parent is labelled or added too (top-down),
    so the added labels stay closed under ancestors."""
    confident = (proba >= np.maximum(thresholds, min_probability)[None, :]) & ~labelled
    order = np.argsort([taxonomy.depth(c) for c in taxonomy.ids], kind="stable")
    for j in order:
        parent = taxonomy.parent(taxonomy.ids[j])
        if parent is not None:
            p = taxonomy.index(parent)
            confident[:, j] &= labelled[:, p] | confident[:, p]
    return confident


def self_train(label_sets: Sequence[set[str]], weights: np.ndarray, taxonomy: Taxonomy, fit: Fit, *,
               views: Sequence[Sequence[str]], rounds: int = 2, min_probability: float = 0.9,
               on_round: Callable[[SelfTrainingRound, np.ndarray], None] | None = None) -> SelfTraining:
    """Up to ``rounds`` rounds: fit every view on the current labels, add every view's confident
    pairs (:func:`confident_pairs`) weighted by their probability; stop early when a round adds
    nothing. ``on_round(round, added so far)`` lets a caller measure each round."""
    if rounds < 1 or not views or any(not v for v in views):
        raise ConfigError(f"Expected rounds >= 1 and non-empty member lists as views. "
                          f"Received: rounds={rounds}, views={[list(v) for v in views]}")
    if not 0.5 <= min_probability < 1.0:
        raise ConfigError(f"Expected min_probability in [0.5, 1). Received: {min_probability}")
    y = taxonomy.close_matrix(taxonomy.to_matrix(label_sets))
    w = np.array(weights, dtype=np.float32, copy=True)
    if w.shape != y.shape:
        raise DataError(f"Expected per-entry weights of shape {y.shape}. Received: {w.shape}")
    added = np.zeros_like(y)
    history = []
    for r in range(1, rounds + 1):
        current = taxonomy.from_matrix(y)
        pool = np.zeros_like(y)
        per_view: dict[str, int] = {}
        proba = np.zeros(y.shape, np.float32)
        for view in views:
            classifier = fit(current, w, view)
            p = oof_proba(classifier)
            assert classifier.thresholds.thresholds_ is not None  # a trained classifier has them
            new = confident_pairs(p, classifier.thresholds.thresholds_, y, taxonomy, min_probability=min_probability)
            per_view["+".join(view)] = int(new.sum())
            proba = np.where(new, np.maximum(proba, p), proba)
            pool |= new
        y |= pool
        w[pool] = proba[pool]
        added |= pool
        record = SelfTrainingRound(round=r, added_pairs=int(pool.sum()), added_products=int(pool.any(axis=1).sum()),
                                   per_view=per_view)
        history.append(record)
        if on_round is not None:
            on_round(record, added)
        if not pool.any():
            break
    return SelfTraining(label_sets=taxonomy.from_matrix(y), weights=w, added=added, rounds=history)
