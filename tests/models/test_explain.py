"""Explanations from the linear member: the tokens with the largest x_j * W_jc."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from models.errors import DataError
from models.explain import top_contributions, top_contributions_batch, wide_inputs

VOCAB = ["[UNK]", "red", "sneaker", "leather", "bag"]
#               cat0  cat1
W = np.array([[0.0, 0.0],
              [0.5, 0.1],
              [2.0, -1.0],
              [0.3, 0.8],
              [-1.0, 3.0]])
X = np.array([[0.0, 1.0, 2.0, 1.0, 0.0],    # red sneaker leather
              [0.0, 0.0, 0.0, 2.0, 1.0]])   # leather bag


def same(got: list[tuple[str, float]], expected: list[tuple[str, float]]) -> bool:
    return [t for t, _ in got] == [t for t, _ in expected] and [v for _, v in got] == pytest.approx(
        [v for _, v in expected])


def test_top_contributions_by_hand() -> None:
    # cat0: sneaker 2*2 = 4, red 1*0.5 = 0.5, leather 1*0.3 = 0.3
    assert same(top_contributions(X[0], W, VOCAB, 0, k=5), [("sneaker", 4.0), ("red", 0.5), ("leather", 0.3)])
    assert same(top_contributions(X[0], W, VOCAB, 0, k=2), [("sneaker", 4.0), ("red", 0.5)])
    # cat1: leather 0.8, red 0.1; sneaker is negative evidence and is left out
    assert same(top_contributions(X[0], W, VOCAB, 1), [("leather", 0.8), ("red", 0.1)])
    assert top_contributions(np.zeros(5), W, VOCAB, 1) == []
    assert same(top_contributions(sparse.csr_matrix(X[1:2]), W, VOCAB, 1), [("bag", 3.0), ("leather", 1.6)])


def test_batch_agrees_with_single_calls() -> None:
    rng = np.random.default_rng(0)
    x = np.where(rng.random((20, 50)) < 0.1, rng.random((20, 50)), 0.0)
    w = rng.normal(size=(50, 7))
    vocab = [f"t{j}" for j in range(50)]
    decided = rng.random((20, 7)) < 0.3
    out = top_contributions_batch(x, w, vocab, decided, k=3)
    for i in range(20):
        assert sorted(out[i]) == np.flatnonzero(decided[i]).tolist()
        for c, contrib in out[i].items():
            assert contrib == top_contributions(x[i], w, vocab, c, k=3)
    as_lists = top_contributions_batch(sparse.csr_matrix(x), w, vocab, [np.flatnonzero(r) for r in decided], k=3)
    assert as_lists == out


def test_batch_by_hand() -> None:
    out = top_contributions_batch(X, W, VOCAB, [[0, 1], []], k=1)
    assert out == [{0: [("sneaker", 4.0)], 1: [("leather", pytest.approx(0.8))]}, {}]


def test_wide_inputs_joins_tfidf_and_one_hot_categoricals() -> None:
    features = {"title_tfidf": np.array([[0.0, 1.5, 0.0], [0.0, 0.0, 2.0]], dtype=np.float32),
                "brand": np.array([[2], [0]], dtype=np.int32),
                "image": np.zeros((2, 4), dtype=np.float32)}  # not read by the linear member
    coefficients = {"title_tfidf": np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]),
                    "brand": np.array([[0.0, 0.0], [0.0, 0.0], [0.0, 5.0]])}
    vocabularies = {"title_tfidf": ["[UNK]", "shoe", "bag"], "brand": ["", "[UNK]", "acme"]}
    x, w, vocab = wide_inputs(features, coefficients, vocabularies)
    assert vocab == ["title_tfidf:[UNK]", "title_tfidf:shoe", "title_tfidf:bag", "brand=<missing>",
                     "brand=[UNK]", "brand=acme"]
    assert x.tolist() == [[0.0, 1.5, 0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 2.0, 1.0, 0.0, 0.0]]
    assert w.shape == (6, 2)
    assert top_contributions(x[0], w, vocab, 1) == [("brand=acme", 5.0)]
    assert top_contributions(x[0], w, vocab, 0) == [("title_tfidf:shoe", 1.5)]
    # the contributions add up to the logits without bias
    assert (x @ w)[0, 1] == pytest.approx(sum(c for _, c in top_contributions(x[0], w, vocab, 1, k=6)))


def test_errors_state_the_expected_shapes() -> None:
    with pytest.raises(DataError, match="vocabulary"):
        top_contributions(X[0], W, VOCAB[:3], 0)
    with pytest.raises(IndexError, match="category column"):
        top_contributions(X[0], W, VOCAB, 2)
    with pytest.raises(DataError, match="decision matrix"):
        top_contributions_batch(X, W, VOCAB, np.zeros((3, 2), bool))
    with pytest.raises(DataError, match="vocabulary entries"):
        wide_inputs({"t": X}, {"t": W}, {"t": VOCAB[:2]})
