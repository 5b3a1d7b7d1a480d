"""The models report's training labels without a human: weak labels, then self-training, each scored against the truth.

:func:`weak_variant` labels the training products with ``models.weak_labels`` (the generated
rules, the MiniLM semantic matcher on titles and the label model, plus seeds for categories no
source labels: what ``prodcat train --labels weak`` does). :func:`self_trained_variant` starts
from those labels and runs ``models.self_training`` with cheap teacher views (every round fits
each view with out-of-fold probabilities); the report's full ensemble is then trained on the
result. Every label set is scored against the training products' true categories (the truth is
read only to score, never to label), and every round records how many pairs it added and how
many of them are right.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from embedder.backends.minilm import MiniLMEncoder
from models.classifier import Classifier
from models.config import FeatureConfig
from models.metrics import evaluate
from models.self_training import SelfTrainingRound, self_train
from models.semantic import SemanticMatcher
from models.training import train_ensemble
from models.weak_labels import WeakLabels, weak_labels
from prodcat.record import ProductRecord
from prodcat.rules import RuleSet
from prodcat.taxonomy import Taxonomy

Log = Callable[[str], None]


def label_scores(y_true: np.ndarray, y: np.ndarray, taxonomy: Taxonomy) -> dict[str, Any]:
    """Micro P/R/F1 of a label matrix against the truth, with how many categories it labels at all."""
    m = evaluate(y_true > 0.5, y > 0.5, taxonomy)
    return {"micro_precision": m["micro_precision"], "micro_recall": m["micro_recall"], "micro_f1": m["micro_f1"],
            "categories_labelled": int((y > 0.5).any(axis=0).sum()), "pairs": int((y > 0.5).sum())}


def weak_variant(records: Sequence[ProductRecord], ruleset: RuleSet, taxonomy: Taxonomy, y_true: np.ndarray,
                 y_rule: np.ndarray, *, threads: int, log: Log) -> tuple[WeakLabels, dict[str, Any]]:
    """Weak labels of ``records`` (the training products) and each source's labels scored against ``y_true``."""
    started = time.perf_counter()
    matcher = SemanticMatcher(MiniLMEncoder(threads=threads), fields=("title",))
    weak = weak_labels(records, ruleset, taxonomy, matcher=matcher)
    seconds = time.perf_counter() - started
    assert weak.matched is not None  # a matcher was given
    matched = weak.matched
    y_weak = taxonomy.to_matrix(weak.label_sets)
    before_seeds = weak.proba >= 0.5
    sources = {"rules": label_scores(y_true, y_rule, taxonomy),
               "semantic matcher (zero-shot, calibrated)": label_scores(y_true, matched, taxonomy),
               "label model (rules + semantic)": label_scores(y_true, before_seeds, taxonomy),
               "label model + seeds for unlabelled categories": label_scores(y_true, y_weak, taxonomy)}
    seeded = [taxonomy.index(c) for c in weak.seeded]
    seeded_pairs = y_weak[:, seeded] & ~before_seeds[:, seeded]
    info = {"sources": sources, "seconds": round(seconds, 1), "n_sources": len(weak.sources),
            "seeded_categories": len(weak.seeded),
            "seeded_precision": float((seeded_pairs & (y_true[:, seeded] > 0.5)).sum() / max(1, seeded_pairs.sum())),
            "matcher_threshold": matcher.threshold_, "matcher_calibrated": matcher.calibrated_}
    log(f"weak labels in {seconds:.0f}s: {info}")
    return weak, info


def self_trained_variant(records: Sequence[ProductRecord], weak: WeakLabels, taxonomy: Taxonomy, y_true: np.ndarray,
                         *, views: Sequence[Sequence[str]], config: FeatureConfig, text_config: FeatureConfig,
                         image_vectors: np.ndarray | None, test: Sequence[ProductRecord],
                         test_vectors: np.ndarray | None, y_test: np.ndarray, rounds: int, min_probability: float,
                         beta: float, log: Log) -> tuple[list[set[str]], np.ndarray, dict[str, Any]]:
    """Self-training from the weak labels; (label sets, entry weights, per-round measurements)."""
    teachers: dict[str, Classifier] = {}

    def fit(label_sets: list[set[str]], weights: np.ndarray, members: Sequence[str]) -> Classifier:
        images = "image_head" in members
        classifier = train_ensemble(records, label_sets, taxonomy, config=config if images else text_config,
                                    members=members, combiner="stacked", beta=beta, folds=2, sample_weight=weights,
                                    image_vectors=image_vectors if images else None, keep_oof=True)
        teachers["+".join(members)] = classifier
        return classifier

    history: list[dict[str, Any]] = []
    start = taxonomy.to_matrix(weak.label_sets)

    def measure(round_: SelfTrainingRound, added: np.ndarray) -> None:
        new_right = int((added & (y_true > 0.5)).sum())
        teacher_f1 = {name: evaluate(y_test > 0.5,
                                     c.decide(test, test_vectors if "image_head" in name else None),
                                     taxonomy, beta=beta)["micro_f1"] for name, c in teachers.items()}
        history.append({"round": round_.round, "added_pairs": round_.added_pairs,
                        "added_products": round_.added_products, "per_view": round_.per_view,
                        "added_precision_so_far": new_right / max(1, int(added.sum())),
                        "labels_vs_truth": label_scores(y_true, start | added, taxonomy),
                        "teacher_test_f1": teacher_f1})
        log(f"self-training round {round_.round}: {history[-1]}")

    started = time.perf_counter()
    result = self_train(weak.label_sets, weak.weights, taxonomy, fit, views=views, rounds=rounds,
                        min_probability=min_probability, on_round=measure)
    info = {"rounds": history, "views": ["+".join(v) for v in views], "min_probability": min_probability,
            "max_rounds": rounds, "seconds": round(time.perf_counter() - started, 1),
            "labels_vs_truth": label_scores(y_true, taxonomy.to_matrix(result.label_sets), taxonomy)}
    return result.label_sets, result.weights, info
