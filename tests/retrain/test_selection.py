"""Batch selection on hand-built pools whose right answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from models.thresholds import NEVER
from retrain.diversity import distinct_in_order
from retrain.selection import (
    CombinedSelection,
    DisagreementSelection,
    ImportanceWeightedSelection,
    Pool,
    RandomSelection,
    StreamSelection,
    UncertaintySelection,
    disagreement_scores,
    uncertainty_scores,
)

T = np.array([0.5, 0.2, 0.7])


def confident_pool(n: int = 20) -> np.ndarray:
    """Every product far from every threshold (0.02 or 0.98), each with at least one category."""
    rng = np.random.default_rng(0)
    p = np.where(rng.random((n, 3)) < 0.5, 0.02, 0.98)
    p[p.max(axis=1) < 0.5, 0] = 0.98
    return p


def test_the_product_on_a_threshold_is_picked_first():
    p = confident_pool()
    p[7, 1] = 0.21  # category 1's threshold is 0.2
    p[3, 2] = 0.6   # near category 2's threshold 0.7, less so
    for kind in ("threshold", "margin", "entropy"):
        sel = UncertaintySelection(kind).select(Pool(p, T), 2, rng=1)
        assert list(sel.indices) == [7, 3], kind
        assert sel.scores[0] > sel.scores[1]
        assert np.all(sel.weights == 1)


def test_threshold_uncertainty_is_one_on_the_threshold_and_zero_at_the_ends():
    p = np.array([[0.5, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.2, 0.0], [1.0, 1.0, 0.0]])
    assert uncertainty_scores(p, T).tolist() == [1.0, 0.0, 1.0, 0.0]


def test_a_product_with_no_category_at_all_is_doubtful_not_confident():
    p = confident_pool(10)
    p[4] = [0.01, 0.0, 0.02]  # nothing near any threshold: every category a confident "no"
    p[6, 1] = 0.5   # decided, not far above its threshold (0.2)
    for kind in ("threshold", "margin", "entropy"):
        assert uncertainty_scores(p, T, kind)[4] > 0.9, kind
        assert UncertaintySelection(kind).select(Pool(p, T), 1, rng=0).indices[0] == 4, kind
        assert UncertaintySelection(kind, undecided=False).select(Pool(p, T), 1, rng=0).indices[0] != 4, kind
    never = np.array([0.5, 0.2, NEVER])  # category 2 is never decided: p = 0.99 there is no doubt
    assert uncertainty_scores(np.array([[0.0, 0.9, 0.99]]), never, kind="threshold")[0] == pytest.approx(0.125)
    clipped = np.array([0.5, 0.2, 1.0])  # the same model with NEVER clipped to 1: 0.99 looks borderline
    assert uncertainty_scores(np.array([[0.0, 0.9, 0.99]]), clipped, kind="threshold")[0] > 0.9
    half_way = np.array([[0.25, 0.1, 0.35]])  # the strongest category is half-way to its threshold
    assert uncertainty_scores(half_way, T, undecided=True)[0] >= 0.5


def test_disagreement_picks_the_product_where_members_split():
    n = 10
    members = np.tile(confident_pool(n), (4, 1, 1))  # four members agreeing everywhere...
    members[:2, 5, 0] = 0.9                          # ...except product 5: two say yes, two say no
    members[2:, 5, 0] = 0.1
    members[0, 8, 2] = 0.75                          # product 8: one dissenter of four
    members[1:, 8, 2] = 0.05
    pool = Pool(members.mean(axis=0), T, members=members)
    for kind in ("vote_entropy", "variance"):
        sel = DisagreementSelection(kind).select(pool, 2, rng=0)
        assert list(sel.indices) == [5, 8], kind
    assert disagreement_scores(members, T)[5] == pytest.approx(1.0)


def test_combined_weights_uncertainty_against_disagreement():
    members = np.tile(confident_pool(6), (2, 1, 1))
    members[0, 1, 0], members[1, 1, 0] = 0.95, 0.05  # split members, mean 0.5: both signals
    members[:, 2, 1] = 0.2                          # agreeing members right on the threshold
    members[0, 4, 2], members[1, 4, 2] = 0.99, 0.01  # split members, mean 0.5 is far from t=0.7
    pool = Pool(members.mean(axis=0), T, members=members)
    assert CombinedSelection(0.5).select(pool, 1, rng=0).indices[0] == 1
    assert set(CombinedSelection(1.0).select(Pool(pool.probabilities, T), 2, rng=0).indices) == {1, 2}
    assert set(CombinedSelection(0.0).select(pool, 2, rng=0).indices) == {1, 4}


def test_strategies_that_need_members_say_so():
    with pytest.raises(ValueError, match="pool.members"):
        DisagreementSelection().select(Pool(confident_pool(), T), 3)
    with pytest.raises(ValueError, match="pool.texts"):
        UncertaintySelection(diverse=True).select(Pool(confident_pool(), T), 3)


def test_random_is_uniform_over_many_draws():
    pool = Pool(confident_pool(20), T)
    rng = np.random.default_rng(42)
    hits = np.zeros(20)
    for _ in range(4000):
        sel = RandomSelection().select(pool, 5, rng)
        assert len(set(sel.indices)) == 5  # without replacement
        hits[sel.indices] += 1
    expected = 4000 * 5 / 20
    assert np.all(np.abs(hits - expected) < 0.1 * expected)


def test_ties_are_broken_at_random_not_by_position():
    pool = Pool(np.full((50, 3), 0.02), T)  # every product equally (un)certain
    firsts = {int(UncertaintySelection().select(pool, 1, rng=seed).indices[0]) for seed in range(30)}
    assert len(firsts) > 10


def pool_with_known_rates(n: int = 200) -> tuple[Pool, np.ndarray]:
    """Uncertain products are rarer positives: an unweighted sample of them is biased."""
    rng = np.random.default_rng(3)
    p = rng.uniform(0.0, 1.0, size=(n, 1))
    f = (p[:, 0] > 0.8).astype(float)  # the quantity to estimate, e.g. a label rate
    return Pool(p, np.array([0.5])), f


def test_importance_weights_are_inverse_sampling_probabilities():
    pool, _ = pool_with_known_rates()
    strategy = ImportanceWeightedSelection(floor=0.2, self_normalise=False)
    q = strategy.probabilities(strategy.base.scores(pool))
    assert q.sum() == pytest.approx(1.0)
    assert q.min() >= 0.2 / pool.n - 1e-12
    sel = strategy.select(pool, 10, rng=0)
    counts = np.ones(len(sel))  # seed 0 draws 10 distinct rows
    assert len(sel) == 10
    np.testing.assert_allclose(sel.weights, counts / (pool.n * q[sel.indices]))
    normalised = ImportanceWeightedSelection(floor=0.2).select(pool, 10, rng=0)
    np.testing.assert_allclose(normalised.weights, sel.weights / sel.weights.mean())
    assert normalised.weights.mean() == pytest.approx(1.0)


def test_importance_weighted_estimates_are_unbiased_where_top_b_is_not():
    pool, f = pool_with_known_rates()
    truth = f.mean()
    rng = np.random.default_rng(11)
    raw, normalised, naive = [], [], []
    for _ in range(3000):
        sel = ImportanceWeightedSelection(floor=0.2, self_normalise=False).select(pool, 20, rng)
        raw.append(np.mean(sel.weights * f[sel.indices]))
        normalised.append(np.sum(sel.weights * f[sel.indices]) / np.sum(sel.weights))
        naive.append(f[sel.indices].mean())
    se = np.std(raw) / np.sqrt(len(raw))
    assert abs(np.mean(raw) - truth) < 4 * se                 # exactly unbiased
    assert abs(np.mean(normalised) - truth) < 0.1 * truth     # self-normalised: bias O(1/B)
    assert abs(np.mean(naive) - truth) > 0.3 * truth          # unweighted: far off
    top = UncertaintySelection().select(pool, 20, rng=0)
    assert f[top.indices].mean() == 0.0                       # top-B sees only the uncertain middle


TITLES = ["Nike Men Red T-shirt", "Nike Men Red T-Shirt ", "Nike Men Red T-Shirt XL",
          "Nike Men Blue Running Shorts", "Adidas Women Black Leggings", "Philips Steam Iron 1200W"]


def test_diversity_drops_near_duplicate_titles_and_keeps_distinct_ones():
    p = np.array([[0.50], [0.49], [0.48], [0.40], [0.35], [0.30]])  # ranked in title order
    pool = Pool(p, np.array([0.5]), texts=TITLES)
    plain = UncertaintySelection().select(pool, 3, rng=0)
    assert plain.indices.tolist() == [0, 1, 2]
    diverse = UncertaintySelection(diverse=True, shortlist_factor=1).select(pool, 3, rng=0)
    assert diverse.indices.tolist() == [0, 3, 4]  # the window widens past the duplicates
    assert distinct_in_order(np.arange(6), TITLES, 10).tolist() == [0, 3, 4, 5]  # fewer than k
    assert distinct_in_order(np.arange(6), TITLES, 10, analyzer="word").tolist() == [0, 3, 4, 5]


def test_diversity_treats_missing_titles_as_distinct():
    texts = [None, "", "Nike Men Red T-Shirt", "Nike Men Red T-shirt"]
    assert distinct_in_order(np.arange(4), texts, 4).tolist() == [0, 1, 2]


def test_pool_rejects_bad_shapes_and_values():
    with pytest.raises(ValueError, match="thresholds"):
        Pool(np.zeros((3, 2)), np.zeros(3))
    with pytest.raises(ValueError, match="outside"):
        Pool(np.array([[np.nan, 0.1]]), np.zeros(2))
    with pytest.raises(ValueError, match="members"):
        Pool(np.zeros((3, 2)), np.zeros(2), members=np.zeros((2, 3, 3)))
    with pytest.raises(ValueError, match="batch_size"):
        RandomSelection().select(Pool(np.zeros((3, 2)), np.zeros(2)), 0)


@pytest.mark.parametrize("batch", [30, 100, 200])
def test_the_stream_asks_for_about_the_budget_on_a_small_pool(batch: int):
    # 400 rows replayed as one day: a draw of 5 every ~18 minutes, which the rate controller once
    # read as bursts 18x the real rate (about a fifth of the budget was asked for)
    rng = np.random.default_rng(0)
    p = confident_pool(400)
    p[:40] = T + rng.normal(0, 0.01, (40, 3))
    pool = Pool(np.clip(p, 0, 1), T)
    counts = [len(StreamSelection().select(pool, batch, rng=seed)) for seed in range(5)]
    assert 0.85 * batch <= np.mean(counts) <= 1.15 * batch, counts
