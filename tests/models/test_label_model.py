"""The label model recovers known source accuracies from agreements alone (seeded synthetic votes),
its labels beat a majority vote, and its helpers respect the tree and the training interface."""

from __future__ import annotations

import numpy as np
import pytest

from models.errors import ConfigError, DataError, NotFittedError
from models.label_model import (
    LabelModel,
    LabelSource,
    ancestor_consistent,
    descendant_sources,
    training_labels,
)
from models.metrics import micro_prf
from prodcat.taxonomy import Taxonomy

# Estimated vs the TRUE rates of the sampled votes (not the nominal ones), so sampling noise of
# the data is not counted against the estimator. Standard errors are ~0.005-0.015 here; the errors seen are <= 0.005.
RECALL_TOL = 0.02
FPR_TOL = 0.005
PRECISION_TOL = 0.02


def _votes(rng: np.random.Generator, y: np.ndarray, recall: float, fpr: float) -> np.ndarray:
    u = rng.random(y.shape)
    return np.where(y, u < recall, u < fpr)


def _true_rates(y: np.ndarray, source: LabelSource) -> tuple[float, float, float]:
    block = np.zeros_like(y)
    block[source.block()] = True
    fired = np.zeros_like(y)
    fired[source.positive_rows, source.positive_columns] = True
    recall = (fired & y & block).sum() / (y & block).sum()
    fpr = (fired & ~y & block).sum() / (~y & block).sum()
    precision = (fired & y).sum() / fired.sum()
    return float(recall), float(fpr), float(precision)


@pytest.fixture(scope="module")
def synthetic() -> tuple[np.ndarray, list[LabelSource], dict[str, tuple[float, float]]]:
    rng = np.random.default_rng(13)
    n, n_cols = 4000, 8
    prior = np.array([0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.1, 0.05])
    y = rng.random((n, n_cols)) < prior
    nominal = {"A": (0.9, 0.02), "B": (0.7, 0.05), "C": (0.5, 0.01), "D": (0.8, 0.10),
               "E-half": (0.6, 0.03), "F-rule": (0.4, 0.005)}
    sources = [LabelSource.from_matrix(name, _votes(rng, y, *nominal[name])) for name in "ABCD"]
    # A source that sees half the products and half the categories, and a rule that sees one category.
    sources.append(LabelSource.from_matrix("E-half", _votes(rng, y, *nominal["E-half"]),
                                           rows=np.arange(0, n, 2), columns=np.arange(4)))
    sources.append(LabelSource.from_matrix("F-rule", _votes(rng, y, *nominal["F-rule"]), columns=np.array([5])))
    return y, sources, nominal


def test_recovers_known_source_accuracies(synthetic) -> None:
    y, sources, nominal = synthetic
    model = LabelModel().fit(sources, y.shape)
    assert model.n_iter_ < model.max_iter
    for j, source in enumerate(sources):
        recall, fpr, precision = _true_rates(y, source)
        assert abs(model.recall_[j] - recall) <= RECALL_TOL, (source.name, model.recall_[j], recall)
        assert abs(model.false_positive_rate_[j] - fpr) <= FPR_TOL, (source.name, model.false_positive_rate_[j], fpr)
        assert abs(model.precision_[j] - precision) <= PRECISION_TOL, (source.name, model.precision_[j], precision)
        assert abs(recall - nominal[source.name][0]) < 0.05  # the synthetic data is what it says
    np.testing.assert_allclose(model.prior_, y.mean(axis=0), atol=0.02)


def test_labels_beat_majority_vote_and_every_source(synthetic) -> None:
    y, sources, _ = synthetic
    proba = LabelModel().fit(sources, y.shape).predict_proba()
    f1_model = micro_prf(y, proba >= 0.5)[2]
    votes = np.zeros(y.shape)
    seen = np.zeros(y.shape)
    for s in sources:
        seen[s.block()] += 1
        votes[s.positive_rows, s.positive_columns] += 1
    f1_majority = micro_prf(y, votes * 2 > seen)[2]
    f1_best = max(micro_prf(y, _fired(s, y.shape))[2] for s in sources)
    assert f1_model > f1_majority + 0.02 and f1_model > f1_best + 0.02, (f1_model, f1_majority, f1_best)


def _fired(source: LabelSource, shape: tuple[int, int]) -> np.ndarray:
    out = np.zeros(shape, dtype=bool)
    out[source.positive_rows, source.positive_columns] = True
    return out


def test_small_rules_are_shrunk_towards_their_group() -> None:
    rng = np.random.default_rng(5)
    n, n_cols = 3000, 12
    y = rng.random((n, n_cols)) < 0.12
    sources = [LabelSource.from_matrix("matcher", _votes(rng, y, 0.75, 0.02)),
               LabelSource.from_matrix("feed", _votes(rng, y, 0.85, 0.01))]
    # one positive-only rule per category, as generate_rules makes them; rule 11 fires very rarely
    recalls = np.linspace(0.3, 0.8, n_cols)
    recalls[11] = 0.01
    for c in range(n_cols):
        sources.append(LabelSource.from_matrix(f"rule:{c}", _votes(rng, y, recalls[c], 0.004), columns=np.array([c]),
                                               group="rules"))
    model = LabelModel().fit(sources, y.shape)
    for j, source in enumerate(sources):
        recall, _fpr, precision = _true_rates(y, source)
        if source.name == "rule:11":
            continue  # a handful of votes: the group's rate is the better estimate
        assert abs(model.recall_[j] - recall) <= RECALL_TOL + 0.02, (source.name, model.recall_[j], recall)
        assert abs(model.precision_[j] - precision) <= PRECISION_TOL + 0.02, (source.name, model.precision_[j],
                                                                             precision)
    # The rarely firing rule's recall lies between its own count (no shrinkage) and the group's.
    rare = model.source_names_.index("rule:11")
    raw = LabelModel(prior_strength=0).fit(sources, y.shape).recall_[rare]
    rules = [j for j, s in enumerate(sources) if s.group == "rules"]
    group = float(np.average(model.recall_[rules], weights=y.sum(axis=0)))
    assert raw < model.recall_[rare] < group, (raw, model.recall_[rare], group)


def test_new_votes_use_the_fitted_rates(synthetic) -> None:
    y, sources, _ = synthetic
    model = LabelModel().fit(sources, y.shape)
    again = model.predict_proba(sources, n_rows=len(y))
    np.testing.assert_allclose(again, model.predict_proba(), atol=1e-6)
    with pytest.raises(DataError, match="sources the model was fitted on"):
        model.predict_proba(sources[:2], n_rows=len(y))
    with pytest.raises(NotFittedError):
        LabelModel().predict_proba()


def test_refuses_bad_sources() -> None:
    with pytest.raises(DataError, match="unique source names"):
        LabelModel().fit([LabelSource("a", np.array([0]), np.array([0]))] * 2, (2, 2))
    with pytest.raises(DataError, match="inside the block"):
        LabelModel().fit([LabelSource("a", np.array([0]), np.array([1]), columns=np.array([0]))], (2, 2))
    with pytest.raises(DataError, match=r"positive rows in \[0, 2\)"):
        LabelModel().fit([LabelSource("a", np.array([5]), np.array([0]))], (2, 2))
    with pytest.raises(ConfigError, match="prior_strength"):
        LabelModel(prior_strength=-1)


def test_ancestor_consistency_and_training_labels() -> None:
    tax = Taxonomy.from_paths([["Shoes", "Sneakers"], ["Shoes", "Boots"], ["Bags"]])
    cols = {name: tax.index(tax.find(path)) for name, path in
            (("bags", ["Bags"]), ("shoes", ["Shoes"]), ("sneakers", ["Shoes", "Sneakers"]), ("boots", ["Shoes", "Boots"]))}
    proba = np.zeros((2, len(tax)), dtype=np.float32)
    proba[0, cols["sneakers"]], proba[0, cols["shoes"]] = 0.9, 0.4
    proba[1, cols["bags"]], proba[1, cols["boots"]] = 0.2, 0.6
    closed = ancestor_consistent(proba, tax)
    assert closed[0, cols["shoes"]] == pytest.approx(0.9) and closed[1, cols["shoes"]] == pytest.approx(0.6)
    y, weights = training_labels(closed)
    assert (tax.close_matrix(y > 0.5) == (y > 0.5)).all()  # still closed under ancestors
    assert weights.class_weight_vector is None
    assert weights.sample_weight[0, cols["sneakers"]] == pytest.approx(0.9)
    assert weights.sample_weight[1, cols["bags"]] == pytest.approx(0.8)


def test_descendant_sources_carry_votes_up_per_depth() -> None:
    tax = Taxonomy.from_paths([["Shoes", "Sneakers", "High Tops"], ["Shoes", "Boots"], ["Bags"]])
    votes = np.zeros((2, len(tax)), dtype=bool)
    votes[0, tax.index(tax.find(["Shoes", "Sneakers", "High Tops"]))] = True
    votes[1, tax.index(tax.find(["Bags"]))] = True  # a root: nothing above it
    sources = descendant_sources(votes, tax)
    assert [s.name for s in sources] == ["rules-below:depth1", "rules-below:depth2"]
    depth1, depth2 = sources
    assert depth1.columns.tolist() == [tax.index(tax.find(["Shoes"]))]
    assert list(zip(depth1.positive_rows, depth1.positive_columns, strict=True)) == [(0, tax.index(tax.find(["Shoes"])))]
    assert depth2.columns.tolist() == [tax.index(tax.find(["Shoes", "Sneakers"]))]
