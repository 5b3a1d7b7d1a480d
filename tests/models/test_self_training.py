"""Self-training: confident out-of-fold predictions on unlabelled entries become labels, top-down,
precision first; every view's additions join one pool; rounds stop when nothing is added."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from models.classifier import Classifier
from models.config import FeatureConfig
from models.ensemble import MeanEnsemble
from models.errors import ConfigError
from models.self_training import confident_pairs, self_train
from models.thresholds import Thresholds
from models.training import OutOfFold, train_ensemble
from prodcat.taxonomy import Taxonomy
from tests.models.conftest import Sample

TAXONOMY = Taxonomy.from_paths([["Footwear", "Shoes"], ["Footwear", "Sandals"], ["Kitchen", "Pans"]])
FOOTWEAR, SHOES, SANDALS = TAXONOMY.find(["Footwear"]), TAXONOMY.find(["Footwear", "Shoes"]), \
    TAXONOMY.find(["Footwear", "Sandals"])
KITCHEN, PANS = TAXONOMY.find(["Kitchen"]), TAXONOMY.find(["Kitchen", "Pans"])


def test_confident_pairs_need_both_thresholds_and_a_labelled_or_added_parent() -> None:
    col = {c: TAXONOMY.index(c) for c in TAXONOMY.ids}
    proba = np.zeros((4, len(TAXONOMY)), np.float32)
    proba[0, [col[FOOTWEAR], col[SHOES]]] = 0.95  # parent and child both confident: both added
    proba[1, col[SHOES]] = 0.95  # child confident, parent not: nothing (it would break closure)
    proba[2, col[PANS]] = 0.95  # parent already labelled: the child is added
    proba[3, [col[FOOTWEAR], col[SANDALS]]] = [0.85, 0.99]  # parent under min_probability: neither
    labelled = np.zeros_like(proba, dtype=bool)
    labelled[2, col[KITCHEN]] = True
    thresholds = np.full(len(TAXONOMY), 0.5, np.float32)

    added = confident_pairs(proba, thresholds, labelled, TAXONOMY, min_probability=0.9)

    assert TAXONOMY.from_matrix(added) == [{FOOTWEAR, SHOES}, set(), {PANS}, set()]
    thresholds[col[PANS]] = 0.97  # a category's own tuned threshold above the floor wins
    assert not confident_pairs(proba, thresholds, labelled, TAXONOMY, min_probability=0.9)[2].any()


class Teacher:
    """A fitted classifier as self-training reads it: out-of-fold probabilities, a combiner, thresholds."""

    def __init__(self, oof: np.ndarray) -> None:
        self.oof_ = OutOfFold(oof[None], oof > 0.5, np.arange(len(oof)), np.arange(len(oof)))
        self.combiner = MeanEnsemble()
        self.thresholds = Thresholds()
        self.thresholds.thresholds_ = np.full(oof.shape[1], 0.5, np.float32)


def shop() -> tuple[list[set[str]], np.ndarray]:
    """Four products: shoes labelled, one unlabelled, pans without their child, nothing."""
    labels = [{FOOTWEAR, SHOES}, set(), {KITCHEN}, set()]
    return labels, np.ones((4, len(TAXONOMY)), np.float32)


def test_every_view_adds_to_one_pool_and_the_rounds_stop_when_nothing_is_added() -> None:
    col = {c: TAXONOMY.index(c) for c in TAXONOMY.ids}
    text, image = np.zeros((4, len(TAXONOMY)), np.float32), np.zeros((4, len(TAXONOMY)), np.float32)
    text[1, [col[FOOTWEAR], col[SHOES]]] = 0.95  # the text view is sure product 1 is a shoe
    image[2, col[PANS]] = 0.92  # the image view is sure product 2 is a pan
    image[1, col[SANDALS]] = 0.6  # and unsure of the rest
    seen: list[tuple[tuple[str, ...], list[set[str]]]] = []

    def fit(label_sets: list[set[str]], weights: np.ndarray, members: Sequence[str]) -> Classifier:
        seen.append((tuple(members), label_sets))
        return Teacher(image if "image_head" in members else text)  # type: ignore[return-value]

    labels, weights = shop()
    result = self_train(labels, weights, TAXONOMY, fit, views=[["logreg"], ["image_head"]], rounds=5)

    assert result.label_sets == [{FOOTWEAR, SHOES}, {FOOTWEAR, SHOES}, {KITCHEN, PANS}, set()]
    assert [r.added_pairs for r in result.rounds] == [3, 0]  # round 2 adds nothing: stop before round 5
    assert result.rounds[0].per_view == {"logreg": 2, "image_head": 1} and result.rounds[0].added_products == 2
    assert seen[2] == (("logreg",), result.label_sets)  # round 2's text view learns the image view's pan
    assert result.weights[2, col[PANS]] == pytest.approx(0.92)  # an added pair weighs its probability
    assert result.weights[0, col[SHOES]] == 1.0 and result.added.sum() == 3
    assert labels == shop()[0]  # the caller's labels are not changed


def test_on_a_real_sample_the_text_and_image_views_label_what_was_blanked_mostly_right(
        sample: Sample, config: FeatureConfig) -> None:
    truth = sample.taxonomy.from_matrix(sample.y)
    blank = np.random.default_rng(0).random(len(truth)) < 0.3
    labels = [set() if b else s for s, b in zip(truth, blank, strict=True)]
    weights = np.ones_like(sample.y, dtype=np.float32)
    weights[blank] = 0.2  # nothing voted on these: weak negatives
    text = config.with_fields(image={"kind": "drop"})

    def fit(label_sets: list[set[str]], w: np.ndarray, members: Sequence[str]) -> Classifier:
        images = "image_head" in members
        return train_ensemble(sample.records, label_sets, sample.taxonomy, config=config if images else text,
                              members=members, folds=2, sample_weight=w, keep_oof=True,
                              image_vectors=sample.images if images else None)

    result = self_train(labels, weights, sample.taxonomy, fit, views=[["logreg"], ["image_head"]], rounds=1,
                        min_probability=0.8)

    added = result.added
    assert set(np.flatnonzero(added.any(axis=1))) <= set(np.flatnonzero(blank))  # only where labels were missing
    assert result.rounds[0].per_view["logreg"] > 0 and result.rounds[0].per_view["image_head"] > 0
    precision = (added & (sample.y > 0.5)).sum() / added.sum()
    assert precision >= 0.8, f"added {added.sum()} pairs at precision {precision:.2f}"


def test_bad_settings_are_refused() -> None:
    labels, weights = shop()
    with pytest.raises(ConfigError, match="min_probability"):
        self_train(labels, weights, TAXONOMY, lambda *_: None, views=[["logreg"]], min_probability=0.3)  # type: ignore[arg-type,return-value]
    with pytest.raises(ConfigError, match="views"):
        self_train(labels, weights, TAXONOMY, lambda *_: None, views=[])  # type: ignore[arg-type,return-value]
