"""Per-category thresholds: hand-computed F0.5 optimum, closure, rare-column fallback, uncertainty, round trips."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.errors import ConfigError, DataError, NotFittedError
from models.metrics import f_beta
from models.thresholds import NEVER, Thresholds
from prodcat.taxonomy import Taxonomy

# One category, five validation products. F0.5 (P, R) by threshold:
#   0.9: (1, 1/3) -> 0.714   0.8: (1, 2/3) -> 0.909   0.7: (2/3, 2/3) -> 0.667
#   0.6: (3/4, 1) -> 0.789   0.2: (3/5, 1) -> 0.652
# so F0.5 picks 0.8 while F1 (0.8 at 0.8, 0.857 at 0.6) picks 0.6.
PROBS = np.array([[0.9], [0.8], [0.7], [0.6], [0.2]], dtype=np.float32)
LABELS = np.array([[1], [1], [0], [1], [0]])


def brute_force(p: np.ndarray, y: np.ndarray, beta: float) -> float:
    """Independent reference: try every unique value, keep the best F-beta (highest threshold on ties)."""
    best_t, best_f = NEVER, 0.0
    for t in sorted(set(p.tolist()), reverse=True):
        pred = p >= t
        tp = int((pred & y).sum())
        f = f_beta(tp / pred.sum(), tp / max(y.sum(), 1), beta) if tp else 0.0
        if f > best_f + 1e-12:
            best_t, best_f = t, f
    return best_t


def test_best_f05_threshold_known_by_hand() -> None:
    assert Thresholds(beta=0.5, min_support=1).fit(PROBS, LABELS).thresholds_.tolist() == [np.float32(0.8)]
    assert Thresholds(beta=1.0, min_support=1).fit(PROBS, LABELS).thresholds_.tolist() == [np.float32(0.6)]
    decided = Thresholds(beta=0.5, min_support=1).fit(PROBS, LABELS).decide(PROBS)
    assert decided.ravel().tolist() == [True, True, False, False, False]


def test_min_precision_constraint() -> None:
    # with P >= 0.8 only 0.9 and 0.8 are allowed, so even F1 picks 0.8
    fitted = Thresholds(beta=1.0, min_support=1, min_precision=0.8).fit(PROBS, LABELS)
    assert fitted.thresholds_.tolist() == [np.float32(0.8)]
    # unreachable precision: never predicted
    never = Thresholds(min_support=1, min_precision=0.9).fit(np.array([[0.9], [0.5]]), np.array([[0], [1]]))
    assert never.thresholds_.tolist() == [NEVER]
    assert not never.decide(np.array([[1.0]], dtype=np.float32)).any()



def test_a_threshold_no_better_than_chance_is_never_taken() -> None:
    # the positives tie with negatives at probability 0 (float32 underflow): only "predict every row"
    # reaches them, F0.5 = 0.405 > 0, yet precision 3/8 is the column's positive rate: chance
    probs = np.array([[0.9], [0.8], [0.7], [0.0], [0.0], [0.0], [0.0], [0.0]])
    y = np.array([[0], [0], [0], [1], [1], [1], [0], [0]])
    fitted = Thresholds(min_support=1, micro_floor=False).fit(probs, y)
    assert fitted.thresholds_.tolist() == [NEVER]
    assert not fitted.decide(probs).any()
    # a column positive on every row has no cut better than chance, and needs none
    everywhere = Thresholds(min_support=1, micro_floor=False).fit(np.full((4, 1), 0.5), np.ones((4, 1)))
    assert everywhere.thresholds_.tolist() == [0.5]


def test_micro_floor_keeps_a_poorly_ranked_rare_category_from_being_decided() -> None:
    # column 0: 40 positives, perfectly ranked (pooled F0.5 at the global threshold 0.9: 40 tp, 0 fp,
    # 3 fn -> 0.985). Column 1: 3 positives at p = 0.3 below 27 negatives at 0.5. Its best own cut,
    # 0.3, has F0.5 = 0.12 > 0 at precision 0.1: it would decide the category for 30% of the rows,
    # and predictions of precision 0.1 lower the pooled F-beta (they need > 0.985 / 1.25 = 0.788)
    probs = np.full((100, 2), 0.1)
    y = np.zeros((100, 2), dtype=bool)
    probs[:40, 0], y[:40, 0] = 0.9, True
    probs[40:67, 1] = 0.5
    probs[[80, 85, 90], 1], y[[80, 85, 90], 1] = 0.3, True
    loose = Thresholds(min_support=1, micro_floor=False).fit(probs, y)
    assert loose.thresholds_[1] == pytest.approx(0.3) and loose.decide(probs)[:, 1].sum() == 30
    fitted = Thresholds(min_support=1).fit(probs, y)
    pooled = 1.25 * 40 / (1.25 * 40 + 0.25 * 3)
    assert fitted.precision_floor_ == pytest.approx(pooled / 1.25)
    assert fitted.thresholds_.tolist() == [0.9, NEVER]
    assert not fitted.decide(probs)[:, 1].any()
    # min_precision still applies when it is the higher floor
    assert Thresholds(min_support=1, min_precision=0.95).fit(probs, y).precision_floor_ == 0.95

def test_matches_brute_force_on_random_columns() -> None:
    rng = np.random.default_rng(3)
    y = rng.random((300, 40)) < 0.15
    probs = np.clip(0.35 * y + rng.random((300, 40)) * 0.7, 0, 1).round(2)  # rounding makes ties
    fitted = Thresholds(beta=0.5, min_support=1).fit(probs, y)
    assert fitted.thresholds_.tolist() == [brute_force(probs[:, c], y[:, c], 0.5) for c in range(40)]


def test_rare_columns_fall_back_to_the_pooled_global_threshold() -> None:
    rng = np.random.default_rng(0)
    y = np.zeros((60, 3), dtype=bool)
    y[:20, 0] = True
    y[:30, 1] = True
    y[0, 2] = True  # one positive: too few for its own threshold
    probs = np.clip(0.4 * y + 0.6 * rng.random(y.shape), 0, 1)
    fitted = Thresholds(beta=0.5, min_support=5).fit(probs, y)
    assert fitted.fallback_.tolist() == [False, False, True]
    assert fitted.support_.tolist() == [20, 30, 1]
    assert fitted.global_threshold_ == brute_force(probs.ravel(), y.ravel(), 0.5)
    assert fitted.thresholds_[2] == fitted.global_threshold_
    assert fitted.thresholds_[0] == brute_force(probs[:, 0], y[:, 0], 0.5)
    # the pooled subsample: capped size, still a threshold from the data
    capped = Thresholds(beta=0.5, min_support=5, max_pooled=50).fit(probs, y)
    assert capped.global_threshold_ in set(probs.ravel().tolist())


@pytest.fixture(scope="module")
def tax() -> Taxonomy:
    t = Taxonomy.from_paths([["Shoes", "Sneakers"], ["Bags", "Totes", "Mini"]])
    assert [t.path_str(i) for i in t.ids] == ["Bags", "Shoes", "Bags > Totes", "Shoes > Sneakers",
                                              "Bags > Totes > Mini"]
    return t


def fixed(tax: Taxonomy, thresholds: list[float]) -> Thresholds:
    """Thresholds with given values and the taxonomy's parents, built through from_dict."""
    parents = [-1 if tax.parent(c) is None else tax.index(tax.parent(c)) for c in tax.ids]
    return Thresholds.from_dict({
        "format": "prodcat.thresholds/1", "config": Thresholds().get_config(), "thresholds": thresholds,
        "global_threshold": 0.5, "support": [9] * len(tax), "fallback": [False] * len(tax), "parents": parents,
        "ids": list(tax.ids)})


def test_decide_closes_under_ancestors_and_negatives_never_remove_them(tax: Taxonomy) -> None:
    th = fixed(tax, [0.5, 0.5, 0.5, 0.5, 0.5])
    #                  Bags Shoes Totes Sneak Mini
    probs = np.array([[0.1, 0.1, 0.1, 0.1, 0.9],    # Mini alone -> Totes and Bags too
                      [0.9, 0.1, 0.2, 0.1, 0.1],    # Bags only
                      [0.1, 0.1, 0.1, 0.7, 0.1],    # Sneakers -> Shoes
                      [np.nan] * 5])                # abstained: nothing
    assert th.decide(probs).astype(int).tolist() == [[1, 0, 1, 0, 1], [1, 0, 0, 0, 0], [0, 1, 0, 1, 0],
                                                     [0, 0, 0, 0, 0]]
    # without a taxonomy (no parents): plain p >= t
    flat = Thresholds.from_dict({**th.to_dict(), "parents": None})
    assert flat.decide(probs[:1]).astype(int).tolist() == [[0, 0, 0, 0, 1]]
    # fit with a taxonomy keeps its parents; without one there are none
    y = tax.close_matrix(probs[:3] > 0.5)
    assert Thresholds(min_support=1).fit(probs[:3], y, tax).parents_.tolist() == [-1, -1, 0, 1, 2]
    assert Thresholds(min_support=1).fit(probs[:3], y).parents_ is None


def test_bottom_up_tuning_counts_what_descendants_force() -> None:
    tax = Taxonomy.from_paths([["A", "B"]])  # columns: A, A > B
    # B: rows 0 and 1 are positives with the top probabilities -> t_B = 0.8 predicts exactly them.
    # A: positives rows 0, 1 (through B) and 2. Alone, A's F0.5 is best at 0.3 (0.789 vs 0.714 at 0.6);
    # given that rows 0 and 1 are predicted anyway through B, 0.6 gives F0.5 = 1.
    probs = np.array([[0.3, 0.9], [0.3, 0.8], [0.6, 0.1], [0.55, 0.2], [0.1, 0.1]])
    y = np.array([[1, 1], [1, 1], [1, 0], [0, 0], [0, 0]])
    assert Thresholds(min_support=1).fit(probs, y, tax).thresholds_.tolist() == [0.6, 0.8]
    assert Thresholds(min_support=1, hierarchical=False).fit(probs, y, tax).thresholds_.tolist() == [0.3, 0.8]
    # a parent whose positives all come through its child needs no threshold of its own
    y2 = np.array([[1, 1], [1, 1], [0, 0], [0, 0], [0, 0]])
    assert Thresholds(min_support=1).fit(probs, y2, tax).thresholds_.tolist() == [NEVER, 0.8]


def test_uncertainty_scales_each_side(tax: Taxonomy) -> None:
    th = fixed(tax, [0.8, 0.8, 0.8, 0.5, NEVER])
    probs = np.array([[0.8, 0.0, 0.0, 0.0, 0.79],   # exactly on a threshold
                      [0.4, 0.0, 0.0, 0.0, 0.0],    # half-way below
                      [0.9, 0.0, 0.0, 0.0, 0.0],    # half-way above
                      [0.0, 0.0, 0.0, 1.0, 0.0],    # far on both sides
                      [0.0, 0.0, 0.0, 0.25, 1.0],   # the never column does not count
                      [np.nan] * 5])
    assert th.uncertainty(probs) == pytest.approx([1.0, 0.5, 0.5, 0.0, 0.5, 1.0])
    assert th.most_borderline(probs)[:5].tolist() == [0, 0, 0, 0, 3]
    per = th.uncertainty_per_category(probs)
    assert per.shape == (6, 5) and np.nanmin(per) >= 0 and np.nanmax(per) <= 1


def test_round_trip_is_exact(tax: Taxonomy, tmp_path) -> None:
    rng = np.random.default_rng(2)
    y = tax.close_matrix(rng.random((80, len(tax))) < 0.3)
    probs = np.clip(0.3 * y + 0.7 * rng.random(y.shape), 0, 1).astype(np.float32)
    fitted = Thresholds(beta=0.5, min_support=20, min_precision=0.5).fit(probs, y, tax)
    again = Thresholds.from_dict(json.loads(json.dumps(fitted.to_dict())))
    assert again.to_dict() == fitted.to_dict()
    assert np.array_equal(again.thresholds_, fitted.thresholds_)
    assert np.array_equal(again.decide(probs), fitted.decide(probs))
    assert np.array_equal(again.uncertainty(probs), fitted.uncertainty(probs))
    fitted.save(tmp_path / "thresholds.json")
    loaded = Thresholds.load(tmp_path / "thresholds.json")
    assert loaded.to_dict() == fitted.to_dict() and loaded.ids_ == tax.ids


def test_errors_name_what_was_expected() -> None:
    with pytest.raises(ConfigError, match="beta"):
        Thresholds(beta=0)
    with pytest.raises(ConfigError, match="min_support"):
        Thresholds(min_support=0)
    with pytest.raises(NotFittedError):
        Thresholds().decide(PROBS)
    with pytest.raises(DataError, match="same"):
        Thresholds().fit(PROBS, LABELS[:3])
    fitted = Thresholds(min_support=1).fit(PROBS, LABELS)
    with pytest.raises(DataError, match=r"\(n, 1\)"):
        fitted.decide(np.zeros((2, 3)))
    with pytest.raises(DataError, match="format"):
        Thresholds.from_dict({"format": "other"})
