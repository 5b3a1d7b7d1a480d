"""Training weights: 1/p makes the labelled sample unbiased; rule trust from human labels."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest

from prodcat.errors import DataError
from prodcat.record import ProductRecord
from prodcat.rules import RuleCategoriser, RuleSet
from prodcat.sampling import DAY_S, SamplingPolicy, StreamSampler
from prodcat.taxonomy import Taxonomy
from retrain.job import GatePolicy, run_round
from retrain.label_store import HumanLabel
from retrain.resolution import ProductLabels
from retrain.selection import Pool, StreamSelection
from retrain.weights import RuleTrust, decided_matrix, importance_weights, label_probabilities

N, BUDGET = 20_000, 1_000


def labelled_sample(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A day of N arrivals; membership of the category rises with the model's doubt, so the sampler,
    which prefers doubtful products, over-samples members. Returns (y of all, asked mask, p)."""
    rng = np.random.default_rng(seed)
    u = rng.beta(2, 3, N)
    y = rng.random(N) < 0.05 + 0.6 * u**2
    t = np.sort(rng.uniform(0, DAY_S, N))
    sampler = StreamSampler(SamplingPolicy(budget_per_day=BUDGET), seed=seed)
    asked, p = np.zeros(N, dtype=bool), np.zeros(N)
    for i in range(0, N, 20):
        draws = sampler.draw(u[i:i + 20].tolist(), [None] * len(u[i:i + 20]), float(t[min(i + 20, N) - 1]))
        asked[i:i + 20] = [x.asked for x in draws]
        p[i:i + 20] = [x.p for x in draws]
        sampler.spend(int(asked[i:i + 20].sum()), float(t[min(i + 20, N) - 1]))
    return y, asked, p


def estimates(y: np.ndarray, asked: np.ndarray, p: np.ndarray) -> tuple[float, float, float]:
    """(1/p-weighted estimate, its standard error, plain share of members among the labelled)."""
    w = importance_weights({i: float(p[i]) for i in np.flatnonzero(asked)})
    idx = np.array(list(w))
    weights, labels = np.array([w[i] for i in idx]), y[idx].astype(float)
    est = float(np.sum(weights * labels) / np.sum(weights))  # mean(w) = 1: the ratio (Hajek) estimator
    se = float(np.sqrt(np.sum(weights**2 * (labels - est) ** 2)) / np.sum(weights))  # its linearised SE
    return est, se, float(labels.mean())


def test_the_one_over_p_estimate_of_a_category_frequency_is_unbiased_where_counting_is_not():
    truths, weighted, plain, errors = [], [], [], []
    for seed in range(8):
        y, asked, p = labelled_sample(seed)
        est, se, count = estimates(y, asked, p)
        truth = float(y.mean())
        # each run: the weighted estimate within 4 standard errors, plain counting far outside
        assert abs(est - truth) < 4 * se, (seed, est, truth, se)
        assert count - truth > 4 * se, (seed, count, truth, se)
        truths.append(truth), weighted.append(est), plain.append(count), errors.append(se)
    # over the 8 runs the weighted estimates centre on the truth (bias < 4 SE / sqrt(8)), counting does not
    bias, tolerance = np.mean(np.array(weighted) - truths), 4 * np.mean(errors) / np.sqrt(8)
    assert abs(bias) < tolerance, (bias, tolerance)
    assert np.mean(np.array(plain) - truths) > 4 * tolerance


def test_importance_weights_are_self_normalised_and_unknown_p_weighs_the_mean():
    w = importance_weights({"a": 0.5, "b": 0.1, "c": None})
    assert w["a"] + w["b"] == pytest.approx(2.0) and w["b"] == pytest.approx(5 * w["a"])
    assert w["c"] == 1.0
    with pytest.raises(DataError, match=r"\(0, 1\]"):
        importance_weights({"a": 1.5})
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    labels = [HumanLabel(product_id="x", category="c", positive=True, labeller="ana", labelled_at=now, p=0.2),
              HumanLabel(product_id="x", category="d", positive=False, labeller="ben", labelled_at=now, p=0.4),
              HumanLabel(product_id="y", category="c", positive=True, labeller="ana", labelled_at=now)]
    assert label_probabilities(labels) == {"x": 0.4, "y": None}


TAXONOMY = Taxonomy.from_paths([("Clothing", "Shorts"), ("Clothing", "Shirts"), ("Footwear", "Sneakers")])
SHORTS, SHIRTS = TAXONOMY.find(["Clothing", "Shorts"]), TAXONOMY.find(["Clothing", "Shirts"])
SNEAKERS = TAXONOMY.find(["Footwear", "Sneakers"])


def test_rule_trust_precision_recall_and_entry_weights():
    # the shorts rule is right 1 time in 4 (it fires on shirts too); the sneaker rule is always right
    # but finds only half of the sneakers
    rules = {f"s{i}": {SHORTS} for i in range(8)} | {f"k{i}": ({SNEAKERS} if i < 4 else set()) for i in range(8)}
    human = {f"s{i}": ProductLabels(frozenset({SHORTS}), frozenset({SNEAKERS})) if i < 2
             else ProductLabels(frozenset({SHIRTS}), frozenset({SHORTS, SNEAKERS})) for i in range(8)}
    human |= {f"k{i}": ProductLabels(frozenset({SNEAKERS}), frozenset({SHORTS, SHIRTS})) for i in range(8)}
    trust = RuleTrust.estimate(rules, human, {}, TAXONOMY, prior=0.01)
    col = TAXONOMY.index
    assert trust.precision[col(SHORTS)] == pytest.approx(0.25, abs=0.01)
    assert trust.precision[col(SNEAKERS)] == pytest.approx(1.0, abs=0.01)
    assert trust.recall[col(SNEAKERS)] == pytest.approx(0.5, abs=0.01)
    # P(sneaker | rule silent) = P(sneaker) (1 - recall) / (1 - rule rate) = 0.5 * 0.5 / 0.75
    silent = trust.silent_positive_rate()[col(SNEAKERS)]
    assert silent == pytest.approx(1 / 3, abs=0.01)
    ids = ["s5", "new"]
    y = TAXONOMY.to_matrix([TAXONOMY.close({SHIRTS}), TAXONOMY.close({SHORTS})])
    decided = decided_matrix(ids, human, TAXONOMY)
    weights = trust.entry_weights(y, decided)
    assert decided[0].sum() == 4 and not decided[1].any()  # s5: Clothing, Shirts yes; Shorts, Sneakers no
    assert np.all(weights[0][decided[0]] == 1.0), "what a person decided weighs 1"
    assert weights[1, col(SHORTS)] == pytest.approx(0.25, abs=0.01)
    assert weights[1, col(SNEAKERS)] == pytest.approx(1 - silent, abs=1e-6)


def test_stream_selection_is_the_worker_sampler_on_a_pool():
    rng = np.random.default_rng(0)
    probs = rng.uniform(0, 1, (3000, 3))
    pool = Pool(probs, np.array([0.5, 0.5, 0.5]))
    sel = StreamSelection().select(pool, 100, rng=1)
    assert 70 <= len(sel) <= 130 and len(set(sel.indices.tolist())) == len(sel)
    assert sel.p is not None and np.all((sel.p > 0) & (sel.p <= 1))
    assert sel.weights.mean() == pytest.approx(1.0)
    assert np.allclose(sel.weights * sel.p, sel.weights[0] * sel.p[0]), "weights are 1/p, normalised"
    again = StreamSelection().select(pool, 100, rng=1)
    assert np.array_equal(sel.indices, again.indices)


def test_p_travels_from_the_stored_labels_to_the_training_weights():
    taxonomy = TAXONOMY
    records = [ProductRecord(id=f"p{i}", title=f"cotton shorts {i}") for i in range(60)]
    rule_labels = {r.id: {SHORTS} for r in records}
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    labels = [HumanLabel(product_id=f"p{i}", category=SHORTS, positive=True, labeller="ana", labelled_at=now,
                         p=0.1 if i % 2 else 0.5) for i in range(40)]
    human = {label.product_id: ProductLabels(frozenset({label.category}), frozenset()) for label in labels}
    importance = importance_weights(label_probabilities(labels))
    seen = {}

    def train(recs, label_sets, tax, weights):
        seen.update(zip([r.id for r in recs], np.asarray(weights).tolist()))
        return RuleCategoriser(RuleSet.from_yaml("[]", tax), version="candidate")

    current = RuleCategoriser(RuleSet.from_yaml("[]", taxonomy), version="current")
    run_round(records, rule_labels, human, current, policy=GatePolicy(min_holdout=1), train=train,
              importance=importance, human_weight=2.0)
    trained = [pid for pid in seen if pid in human]
    assert trained, "some labelled products are trained on (the rest are held out)"
    for pid in trained:  # human_weight x self-normalised 1/p: p = 0.1 weighs 5x p = 0.5
        assert seen[pid] == pytest.approx(2.0 * importance[pid])
    odd = [seen[p] for p in trained if int(p[1:]) % 2]
    even = [seen[p] for p in trained if not int(p[1:]) % 2]
    assert odd and even and odd[0] == pytest.approx(5 * even[0])
    assert all(seen[pid] == 1.0 for pid in seen if pid not in human)
