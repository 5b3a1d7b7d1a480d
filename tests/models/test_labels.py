"""Label matrices, class weights and the positive-unlabelled correction."""

from __future__ import annotations

import numpy as np
import pytest

from models.errors import ConfigError, DataError
from models.labels import LabelWeighting, label_matrix, labels_from_paths, reliable_negatives
from prodcat.taxonomy import Taxonomy

TREE = Taxonomy.from_paths([
    ["Clothing", "Shorts"], ["Clothing", "Shirts"], ["Footwear", "Sneakers"], ["Footwear", "Boots"], ["Bags"],
])


def col(*path: str) -> int:
    return TREE.index(TREE.find(path))


def test_label_matrix_is_closed_under_ancestors():
    y = label_matrix([{TREE.find(["Clothing", "Shorts"])}, {TREE.find(["Bags"])}, set()], TREE)
    assert y.dtype == np.float32 and y.shape == (3, len(TREE))
    assert y[0, col("Clothing", "Shorts")] == 1 and y[0, col("Clothing")] == 1 and y[0].sum() == 2
    assert y[1].sum() == 1 and y[2].sum() == 0


def test_label_matrix_rejects_unknown_ids():
    with pytest.raises(DataError, match="unknown category id 'nope'"):
        label_matrix([{"nope"}], TREE)


def test_labels_from_paths_take_the_deepest_known_category():
    labels = labels_from_paths([["Clothing", "Shorts", "Cycling Shorts"], ["Toys"], [], ["footwear"]], TREE)
    assert labels == [{TREE.find(["Clothing", "Shorts"])}, set(), set(), {TREE.find(["Footwear"])}]


def test_reliable_negatives_follow_the_tree():
    y = label_matrix([{TREE.find(["Clothing", "Shorts"])}, {TREE.find(["Footwear"])}, set()], TREE)
    reliable = reliable_negatives(y, TREE)
    # Placed at the leaf: every zero is reliable (the product is elsewhere at level 1 or 2).
    assert reliable[0].sum() == len(TREE) - 2
    # Placed at "Footwear" only: other branches are reliable negatives, Footwear's children are not.
    assert reliable[1, col("Clothing", "Shirts")] and reliable[1, col("Bags")]
    assert not reliable[1, col("Footwear", "Boots")] and not reliable[1, col("Footwear", "Sneakers")]
    # No rule fired: nothing is known.
    assert not reliable[2].any()
    assert not (reliable & (y > 0)).any()


def test_pu_correction_down_weights_unlabelled_zeros_and_can_be_turned_off():
    y = label_matrix([{TREE.find(["Footwear"])}, set()], TREE)
    on = LabelWeighting(pu_correction=True, unlabelled_weight=0.25).compute(y, TREE)
    assert on.sample_weight is not None and on.sample_weight.shape == y.shape
    assert on.sample_weight[0, col("Footwear", "Boots")] == 0.25 and on.sample_weight[0, col("Bags")] == 1.0
    assert on.sample_weight[0, col("Footwear")] == 1.0
    assert (on.sample_weight[1] == 0.25).all()
    assert LabelWeighting(pu_correction=False).compute(y, TREE).sample_weight is None


def test_positive_weights_are_capped_inverse_frequency():
    y = np.zeros((1000, 3), dtype=np.float32)
    y[:500, 0] = 1  # balanced: weight 1
    y[:10, 1] = 1  # rare: sqrt(990/10) ~ 9.95
    weights = LabelWeighting(positive_power=0.5, positive_cap=5.0).class_weight_vector(y)
    assert weights.dtype == np.float32
    assert weights.tolist() == pytest.approx([1.0, 5.0, 5.0])  # class 2 has no positives: capped, harmless
    assert LabelWeighting(positive_power=0.5, positive_cap=100.0).class_weight_vector(y)[1] == pytest.approx(99**0.5)
    assert LabelWeighting(positive_power=0).class_weight_vector(y) is None


def test_weighting_config_round_trip_and_errors():
    weighting = LabelWeighting(positive_power=1.0, positive_cap=3.0, pu_correction=True, unlabelled_weight=0.1)
    assert LabelWeighting.from_config(weighting.get_config()).get_config() == weighting.get_config()
    with pytest.raises(ConfigError, match="unlabelled_weight in \\[0, 1\\], received 2"):
        LabelWeighting(unlabelled_weight=2)
    with pytest.raises(DataError, match=r"expected a label matrix of shape \(n, 7\)"):
        LabelWeighting(pu_correction=True).sample_weight(np.zeros((2, 3)), TREE)
