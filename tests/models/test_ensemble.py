"""Ensembles on member probability matrices: hand examples, an informative vs a noise member, sklearn, round trips."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from models.ensemble import (
    MeanEnsemble,
    StackedEnsemble,
    WeightedEnsemble,
    disagreement,
    ensemble_from_dict,
    load_ensemble,
)
from models.errors import DataError, NotFittedError
from models.folds import out_of_fold
from models.thresholds import Thresholds
from prodcat.taxonomy import Taxonomy


def log_loss(q: np.ndarray, y: np.ndarray) -> float:
    q = np.clip(q.astype(np.float64), 1e-6, 1 - 1e-6)
    return float(-np.mean(np.where(y, np.log(q), np.log1p(-q))))


@pytest.fixture(scope="module")
def synthetic() -> tuple[list[np.ndarray], np.ndarray]:
    """Member 0 is informative, member 1 is pure noise; 2,000 products x 30 categories of varied prevalence."""
    rng = np.random.default_rng(0)
    n, c = 2000, 30
    y = rng.random((n, c)) < np.linspace(0.02, 0.3, c)
    informative = 1 / (1 + np.exp(-(3.0 * (2 * y - 1) + rng.normal(0, 1.5, (n, c)))))
    noise = rng.random((n, c))
    return [informative.astype(np.float32), noise.astype(np.float32)], y


def test_mean_by_hand_and_abstention() -> None:
    a = np.array([[0.2, 0.8], [0.4, 0.6]], dtype=np.float32)
    b = np.array([[0.6, 0.4], [np.nan, np.nan]], dtype=np.float32)  # abstains on row 1
    out = MeanEnsemble().predict_proba([a, b])
    assert out.dtype == np.float32
    assert out == pytest.approx(np.array([[0.4, 0.6], [0.4, 0.6]]))
    assert MeanEnsemble().predict_proba([b])[1].tolist() == [0.0, 0.0]  # nobody answered


def test_weights_concentrate_on_the_informative_member(synthetic) -> None:
    members, y = synthetic
    fitted = WeightedEnsemble().fit(members, y)
    assert fitted.weights_.sum() == pytest.approx(1.0)
    assert (fitted.weights_ >= 0).all()
    assert fitted.weights_[0] > 0.9
    swapped = WeightedEnsemble().fit(members[::-1], y)
    assert swapped.weights_[1] == pytest.approx(fitted.weights_[0], abs=1e-4)
    # predictions are the weighted mean; abstaining members drop out and the rest renormalise
    w = fitted.weights_
    assert fitted.predict_proba(members) == pytest.approx(w[0] * members[0] + w[1] * members[1], abs=1e-6)
    gone = members[1].copy()
    gone[:5] = np.nan
    assert fitted.predict_proba([members[0], gone])[:5] == pytest.approx(members[0][:5], abs=1e-6)


def test_stacked_beats_the_mean_on_held_out_rows(synthetic) -> None:
    members, y = synthetic
    train, test = slice(0, 1000), slice(1000, None)
    stacked = StackedEnsemble().fit([m[train] for m in members], y[train])
    assert abs(stacked.slopes_[0]) > 10 * abs(stacked.slopes_[1])
    q_stacked = stacked.predict_proba([m[test] for m in members])
    q_mean = MeanEnsemble().predict_proba([m[test] for m in members])
    assert q_stacked.dtype == np.float32 and q_stacked.shape == y[test].shape
    assert log_loss(q_stacked, y[test]) < 0.8 * log_loss(q_mean, y[test])
    assert log_loss(q_stacked, y[test]) <= log_loss(members[0][test], y[test])


def test_stacked_equals_sklearn_logistic_regression_on_one_hot_categories(synthetic) -> None:
    """With equal penalties the objective is sklearn's: 0.5 |w|^2 + C * sum log-loss, C = 1 / l2, free intercept."""
    members, y = synthetic
    members, y = [m[:400, :8] for m in members], y[:400, :8]
    ours = StackedEnsemble(bias_l2=2.0, slope_l2=2.0, tol=1e-10).fit(members, y)
    n, c = y.shape
    logits = [np.log(m) - np.log1p(-m) for m in (np.clip(p.astype(np.float64), 1e-6, 1 - 1e-6) for p in members)]
    x = np.column_stack([z.ravel() for z in logits] + [np.tile(np.eye(c), (n, 1))])
    ref = LogisticRegression(C=0.5, tol=1e-12, max_iter=10_000).fit(x, y.ravel())
    assert ours.slopes_ == pytest.approx(ref.coef_[0, :2], abs=1e-4)
    assert ours.biases_ == pytest.approx(ref.coef_[0, 2:], abs=1e-4)
    assert ours.intercept_ == pytest.approx(ref.intercept_[0], abs=1e-4)


def test_stacked_subsampling_keeps_calibration(synthetic) -> None:
    members, y = synthetic
    full = StackedEnsemble().fit(members, y)
    sampled = StackedEnsemble(max_entries=15_000).fit(members, y)  # all ~9.7k positives + ~5k negatives
    q_full, q_sampled = full.predict_proba(members), sampled.predict_proba(members)
    assert q_sampled.mean() == pytest.approx(q_full.mean(), abs=0.01)
    assert q_sampled.mean() == pytest.approx(y.mean(), abs=0.01)


def test_stacked_imputes_abstaining_members() -> None:
    stacked = StackedEnsemble.from_dict({
        "format": "prodcat.ensemble/1", "kind": "stacked", "config": StackedEnsemble().get_config(),
        "n_members": 2, "n_categories": 1, "state": {"slopes": [1.0, 1.0], "intercept": 0.0, "biases": [0.0]}})
    p = np.array([[0.8]], dtype=np.float32)
    # the abstaining member takes the mean logit of the others: 2 * logit(0.8) = log 16 -> 16 / 17
    assert stacked.predict_proba([p, np.full_like(p, np.nan)])[0, 0] == pytest.approx(16 / 17)


def test_stacked_keeps_confident_negatives_ordered() -> None:
    # slopes of 3 on two members put these near logits -40 to -60: float32 tanh gave all of them exactly 0
    stacked = StackedEnsemble.from_dict({
        "format": "prodcat.ensemble/1", "kind": "stacked", "config": StackedEnsemble().get_config(),
        "n_members": 2, "n_categories": 1, "state": {"slopes": [3.0, 3.0], "intercept": 0.0, "biases": [0.0]}})
    p = np.array([[1e-3], [1e-4], [1e-5]], dtype=np.float32)
    q = stacked.predict_proba([p, p])[:, 0]
    assert q.dtype == np.float32 and (q > 0).all() and q[0] > q[1] > q[2]


@pytest.mark.parametrize("ensemble", [MeanEnsemble(), WeightedEnsemble(), StackedEnsemble()], ids=lambda e: e.kind)
def test_round_trips_are_exact(ensemble, synthetic, tmp_path) -> None:
    members, y = synthetic
    fitted = ensemble.clone().fit(members, y)
    data = json.loads(json.dumps(fitted.to_dict(), allow_nan=False))
    again = ensemble_from_dict(data)
    assert type(again) is type(fitted) and again.to_dict() == fitted.to_dict()
    assert np.array_equal(again.predict_proba(members), fitted.predict_proba(members))
    fitted.save(tmp_path / "ensemble.json")
    loaded = load_ensemble(tmp_path / "ensemble.json")
    assert np.array_equal(loaded.predict_proba(members), fitted.predict_proba(members))
    assert type(fitted).load(tmp_path / "ensemble.json").to_dict() == fitted.to_dict()


def test_shape_and_state_errors(synthetic) -> None:
    members, y = synthetic
    with pytest.raises(NotFittedError):
        StackedEnsemble().predict_proba(members)
    with pytest.raises(DataError, match="one shape"):
        MeanEnsemble().fit([members[0], members[1][:, :3]], y)
    with pytest.raises(DataError, match="y_true"):
        WeightedEnsemble().fit(members, y[:10])
    fitted = StackedEnsemble(max_iter=2).fit([m[:50] for m in members], y[:50])
    with pytest.raises(DataError, match="2 members"):
        fitted.predict_proba(members[:1])
    with pytest.raises(DataError, match="'stacked'"):
        StackedEnsemble.from_dict(MeanEnsemble().fit(members).to_dict())


def test_disagreement_vote_entropy() -> None:
    #                         c0   c1   c2
    a = np.array([[0.9, 0.9, 0.1],
                  [0.9, 0.1, 0.1],
                  [0.1, 0.1, 0.1]])
    b = np.array([[0.9, 0.1, 0.1],
                  [0.9, 0.1, 0.1],
                  [0.1, 0.1, 0.1]])
    # row 0: c0 unanimous (0), c1 split (1) -> mean 0.5, max 1; row 1: all agree; row 2: nobody predicts
    assert disagreement([a, b], 0.5).tolist() == [0.5, 0.0, 0.0]
    assert disagreement([a, b], 0.5, reduce="max").tolist() == [1.0, 0.0, 0.0]
    assert disagreement([a, a], 0.5).tolist() == [0.0, 0.0, 0.0]
    # three members, 2 against 1 is the largest possible split -> 1; an abstaining member does not vote
    assert disagreement([a, b, b], 0.5, reduce="max")[0] == pytest.approx(1.0)
    absent = np.full_like(a, np.nan)
    assert disagreement([a, absent], 0.5).tolist() == [0.0, 0.0, 0.0]
    assert disagreement([a, b, absent], np.array([0.5, 0.5, 0.5]), reduce="max").tolist() == [1.0, 0.0, 0.0]


def test_disagreement_variance_and_thresholds_object() -> None:
    one, zero = np.array([[1.0, 0.2]]), np.array([[0.0, 0.2]])
    assert disagreement([one, zero], 0.5, kind="variance").tolist() == [1.0]  # var 0.25 -> 1
    assert disagreement([one, one], 0.5, kind="variance").tolist() == [0.0]
    # with a Thresholds object votes are closed under ancestors: a child vote is a parent vote
    tax = Taxonomy.from_paths([["A", "B"]])  # columns A, A > B
    th = Thresholds.from_dict({"format": "prodcat.thresholds/1", "config": Thresholds().get_config(),
                               "thresholds": [0.5, 0.5], "global_threshold": 0.5, "support": [5, 5],
                               "fallback": [False, False], "parents": [-1, 0], "ids": list(tax.ids)})
    child_only, parent_only = np.array([[0.1, 0.9]]), np.array([[0.9, 0.1]])
    # A: both vote yes (0), B: split (1) -> mean 0.5
    assert disagreement([child_only, parent_only], th).tolist() == [0.5]
    assert disagreement([child_only, parent_only], 0.5).tolist() == [1.0]


def test_out_of_fold_never_predicts_a_row_it_trained_on() -> None:
    n, seen = 23, []
    y = np.arange(n, dtype=np.float64)

    def memoriser(train_idx: np.ndarray, val_idx: np.ndarray) -> np.ndarray:
        seen.append((train_idx, val_idx))
        known = dict(zip(train_idx.tolist(), y[train_idx].tolist()))
        return np.array([[known.get(i, -1.0), i] for i in val_idx.tolist()])

    out = out_of_fold(memoriser, n, k=4, seed=1)
    assert out.shape == (n, 2)
    assert (out[:, 0] == -1).all()  # a memoriser never saw the rows it predicted
    assert out[:, 1].tolist() == list(range(n))  # assembled in the original order
    assert sorted(np.concatenate([v for _, v in seen]).tolist()) == list(range(n))
    assert all(len(np.intersect1d(t, v)) == 0 and len(t) + len(v) == n for t, v in seen)
    assert sorted(len(v) for _, v in seen) == [5, 6, 6, 6]
    assert np.array_equal(out_of_fold(memoriser, n, k=4, seed=1), out)
    with pytest.raises(DataError, match="rows"):
        out_of_fold(lambda tr, va: np.zeros((1, 2)), n, k=4)
    with pytest.raises(ValueError, match="k"):
        out_of_fold(memoriser, 3, k=5)
