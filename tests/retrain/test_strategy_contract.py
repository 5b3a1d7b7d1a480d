"""The selection-strategy contract, run over every strategy in the registry, the stream's included.

What retraining relies on, whichever strategy chose the labels: distinct pool rows; one weight
(positive, finite, mean 1) and one finite score per row; about ``batch_size`` rows (exactly at
most that many for the pool strategies, never more than the stream's hard stop of 1.5x); the
same seed gives the same selection; a bad batch size or a pool missing what the strategy needs
is refused with a ValueError that says what to pass; an informed strategy picks
doubtful products more often than they occur. A new strategy is covered by adding it to
``STRATEGIES``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

from retrain.selection import (
    CombinedSelection,
    DisagreementSelection,
    ImportanceWeightedSelection,
    Pool,
    RandomSelection,
    ScoreSelection,
    Selection,
    Strategy,
    StreamSelection,
    UncertaintySelection,
)
from tests.helpers import implementations


@dataclass(frozen=True)
class Case:
    """A strategy and whether it looks at the model's doubt (random does not)."""

    strategy: Strategy
    informed: bool = True


STRATEGIES: dict[str, Case] = {
    "random": Case(RandomSelection(), informed=False),
    "uncertainty": Case(UncertaintySelection()),
    "uncertainty-diverse": Case(UncertaintySelection(diverse=True)),
    "disagreement": Case(DisagreementSelection()),
    "combined": Case(CombinedSelection()),
    "importance-weighted": Case(ImportanceWeightedSelection()),
    "stream": Case(StreamSelection()),
}
N, DOUBTFUL = 400, 40
THRESHOLDS = np.array([0.5, 0.3, 0.7])


@pytest.fixture(scope="module")
def pool() -> Pool:
    """400 products: the first 40 sit on a threshold with members split, the rest are clear-cut."""
    rng = np.random.default_rng(0)
    p = np.where(rng.random((N, 3)) < 0.5, 0.02, 0.97)
    p[p.max(axis=1) < 0.5, 0] = 0.97
    members = np.stack([p, p, p])
    p[:DOUBTFUL] = THRESHOLDS + rng.normal(0, 0.01, (DOUBTFUL, 3))
    members[:, :DOUBTFUL] = np.clip(p[:DOUBTFUL] + np.array([[-0.3], [0.0], [0.25]])[:, None], 0, 1)
    titles = [f"product {i} {rng.integers(10**9)}" for i in range(N)]
    return Pool(np.clip(p, 0, 1), THRESHOLDS, members=members, texts=titles)


@pytest.fixture(params=list(STRATEGIES))
def case(request) -> Case:
    return STRATEGIES[request.param]


def test_registry_covers_every_strategy() -> None:
    assert {type(c.strategy) for c in STRATEGIES.values()} == implementations(Strategy) - {ScoreSelection}


def test_a_selection_is_distinct_rows_with_weights_and_scores(case: Case, pool: Pool) -> None:
    sel = case.strategy.select(pool, 30, rng=1)
    assert isinstance(sel, Selection) and len(sel) >= 1
    idx = np.asarray(sel.indices)
    assert np.issubdtype(idx.dtype, np.integer) and ((idx >= 0) & (idx < pool.n)).all()
    assert len(np.unique(idx)) == len(idx)
    assert len(sel.weights) == len(sel.scores) == len(idx)
    assert np.isfinite(sel.weights).all() and (sel.weights > 0).all()
    assert np.mean(sel.weights) == pytest.approx(1.0)
    assert np.isfinite(sel.scores).all()
    if sel.p is not None:  # the probabilities they were asked with
        assert len(sel.p) == len(idx) and ((sel.p > 0) & (sel.p <= 1)).all()


@pytest.mark.parametrize("batch", [1, 30, 1000])
def test_never_more_than_the_pool_or_the_hard_stop(case: Case, pool: Pool, batch: int) -> None:
    sel = case.strategy.select(pool, batch, rng=2)
    assert len(sel) <= min(pool.n, math.ceil(1.5 * batch))


def test_about_batch_size_rows_from_a_large_pool(case: Case, pool: Pool) -> None:
    # 10,000 rows: importance-weighted draws with replacement, so on the 400-row pool (40 doubtful
    # products) its 100 draws hold fewer distinct rows; the stream on small pools: test_selection.py
    large = Pool(np.tile(pool.probabilities, (25, 1)), pool.thresholds, members=np.tile(pool.members, (1, 25, 1)),
                 texts=[f"{title} #{copy}" for copy in range(25) for title in pool.texts])
    assert 80 <= len(case.strategy.select(large, 100, rng=3)) <= 150


def test_the_same_seed_gives_the_same_selection(case: Case, pool: Pool) -> None:
    first, again = case.strategy.select(pool, 30, rng=7), case.strategy.select(pool, 30, rng=7)
    assert np.array_equal(first.indices, again.indices) and np.array_equal(first.weights, again.weights)
    generator = case.strategy.select(pool, 30, rng=np.random.default_rng(7))
    assert np.array_equal(generator.indices, first.indices)


def test_a_bad_batch_size_is_refused(case: Case, pool: Pool) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        case.strategy.select(pool, 0)


def test_a_pool_without_members_or_texts_works_or_says_what_to_pass(case: Case, pool: Pool) -> None:
    bare = Pool(pool.probabilities, pool.thresholds)
    try:
        sel = case.strategy.select(bare, 30, rng=0)
    except ValueError as exc:
        assert "pool.members" in str(exc) or "pool.texts" in str(exc)
    else:
        assert 1 <= len(sel) <= 45


def test_an_informed_strategy_prefers_doubtful_products(case: Case, pool: Pool) -> None:
    doubtful = np.mean([np.mean(case.strategy.select(pool, 40, rng=seed).indices < DOUBTFUL)
                        for seed in range(5)])
    base_rate = DOUBTFUL / N
    if case.informed:
        assert doubtful > 3 * base_rate
    else:
        assert doubtful < 3 * base_rate
