"""Multi-label metrics on a tiny fixed example (answers by hand) and against sklearn."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import f1_score, fbeta_score, precision_score, recall_score

from models.errors import DataError
from models.metrics import coverage, evaluate, f_beta, hierarchical_prf, macro_prf, micro_prf, per_level_f1
from prodcat.taxonomy import Taxonomy


@pytest.fixture(scope="module")
def tax() -> Taxonomy:
    t = Taxonomy.from_paths([["Shoes", "Sneakers"], ["Shoes", "Boots"], ["Bags", "Totes", "Mini"]])
    # column order: depth, then path
    assert [t.path_str(i) for i in t.ids] == ["Bags", "Shoes", "Bags > Totes", "Shoes > Boots",
                                              "Shoes > Sneakers", "Bags > Totes > Mini"]
    return t


#                  Bags Shoes Totes Boots Sneak Mini
Y_TRUE = np.array([[0, 1, 0, 0, 1, 0],   # Shoes > Sneakers
                   [1, 0, 1, 0, 0, 0],   # Bags > Totes
                   [0, 1, 0, 1, 0, 0],   # Shoes > Boots
                   [1, 0, 0, 0, 0, 0]], dtype=bool)  # Bags
Y_PRED = np.array([[0, 1, 0, 1, 0, 0],   # the right parent, the wrong leaf
                   [0, 0, 0, 0, 0, 1],   # Mini alone: implies Bags > Totes when closed
                   [0, 0, 0, 0, 0, 0],   # nothing
                   [1, 0, 0, 0, 0, 0]], dtype=bool)


def test_f_beta_by_hand_and_against_sklearn() -> None:
    assert f_beta(1.0, 0.5, beta=0.5) == pytest.approx(0.625 / 0.75)
    assert f_beta(0.0, 0.0) == 0.0
    assert np.allclose(f_beta(np.array([1.0, 0.5]), np.array([0.5, 0.5])), [2 / 3, 0.5])
    with pytest.raises(ValueError, match="beta"):
        f_beta(0.5, 0.5, beta=0)
    rng = np.random.default_rng(1)
    t, p = rng.random((50, 7)) < 0.3, rng.random((50, 7)) < 0.3
    assert micro_prf(t, p, beta=0.5)[2] == pytest.approx(fbeta_score(t, p, beta=0.5, average="micro"))


def test_micro_by_hand() -> None:
    # true 7 entries, predicted 4, true positives 2 (Shoes of row 0, Bags of row 3)
    assert micro_prf(Y_TRUE, Y_PRED) == pytest.approx((2 / 4, 2 / 7, 2 * 2 / (4 + 7)))


def test_macro_by_hand_over_categories_with_support() -> None:
    # Bags: P 1 R 1/2; Shoes: P 1 R 1/2; Totes, Boots, Sneakers: 0; Mini has no support -> left out
    p, r, f = macro_prf(Y_TRUE, Y_PRED)
    assert (p, r, f) == pytest.approx((2 / 5, 1 / 5, (2 / 3 + 2 / 3) / 5))
    labels = [0, 1, 2, 3, 4]
    assert f == pytest.approx(f1_score(Y_TRUE, Y_PRED, average="macro", labels=labels, zero_division=0))
    assert p == pytest.approx(precision_score(Y_TRUE, Y_PRED, average="macro", labels=labels, zero_division=0))
    assert r == pytest.approx(recall_score(Y_TRUE, Y_PRED, average="macro", labels=labels, zero_division=0))


def test_micro_and_macro_agree_with_sklearn_on_random_matrices() -> None:
    rng = np.random.default_rng(0)
    t, p = rng.random((200, 12)) < 0.2, rng.random((200, 12)) < 0.25
    t[:, 3] = False  # a category without support
    assert micro_prf(t, p) == pytest.approx((precision_score(t, p, average="micro"),
                                            recall_score(t, p, average="micro"), f1_score(t, p, average="micro")))
    labels = np.flatnonzero(t.any(axis=0))
    assert macro_prf(t, p)[2] == pytest.approx(f1_score(t, p, average="macro", labels=labels, zero_division=0))


def test_hierarchical_closes_both_sides(tax: Taxonomy) -> None:
    # closed prediction: row 0 {Shoes, Boots}, row 1 {Bags, Totes, Mini}, row 3 {Bags}: 6 entries,
    # true positives Shoes, Bags, Totes, Bags = 4; true 7
    assert hierarchical_prf(Y_TRUE, Y_PRED, tax) == pytest.approx((4 / 6, 4 / 7, 8 / 13))
    # a leaf-only truth is closed too
    leaf_only = Y_TRUE.copy()
    leaf_only[:, 1] = False
    leaf_only[1, 0] = False
    assert hierarchical_prf(leaf_only, Y_PRED, tax) == pytest.approx((4 / 6, 4 / 7, 8 / 13))


def test_per_level_f1_and_coverage(tax: Taxonomy) -> None:
    # level 1: true 4, predicted (closed) 3, tp 3; level 2: true 3, predicted 2 (Boots, Totes), tp 1;
    # level 3: true 0, predicted 1 (Mini)
    assert per_level_f1(Y_TRUE, Y_PRED, tax) == pytest.approx({1: 6 / 7, 2: 2 / 5, 3: 0.0})
    # rows 0 (Boots) and 1 (Mini implies Totes) have a level-2 category
    assert coverage(Y_PRED, tax) == 0.5
    assert coverage(Y_PRED, tax, level=3) == 0.25


def test_evaluate_is_flat_json_without_nan(tax: Taxonomy) -> None:
    out = evaluate(Y_TRUE, Y_PRED.astype(np.float32), tax)
    assert json.loads(json.dumps(out, allow_nan=False)) == out
    assert all("." not in k for k in out)
    assert out["micro_f1"] == pytest.approx(4 / 11)
    assert out["macro_f1"] == pytest.approx(4 / 15)
    assert out["hierarchical_f1"] == pytest.approx(8 / 13)
    assert out["hierarchical_fbeta"] == pytest.approx(f_beta(4 / 6, 4 / 7, beta=0.5))
    assert out["micro_fbeta"] == pytest.approx(f_beta(0.5, 2 / 7, beta=0.5))
    assert (out["f1_level_1"], out["f1_level_2"], out["f1_level_3"]) == pytest.approx((6 / 7, 2 / 5, 0.0))
    assert out["coverage"] == 0.5
    assert (out["n_products"], out["n_categories"], out["n_categories_with_support"]) == (4, 6, 5)
    empty = evaluate(np.zeros((3, 6), bool), np.zeros((3, 6), bool), tax)
    assert all(v == 0 for k, v in empty.items() if k not in ("beta", "n_products", "n_categories"))


def test_bad_inputs_are_rejected(tax: Taxonomy) -> None:
    with pytest.raises(DataError, match="only 0/1"):
        micro_prf(Y_TRUE, np.full(Y_TRUE.shape, 0.7))
    with pytest.raises(DataError, match="same shape"):
        micro_prf(Y_TRUE, Y_PRED[:2])
    with pytest.raises(DataError, match="6 columns"):
        evaluate(Y_TRUE[:, :5], Y_PRED[:, :5], tax)
