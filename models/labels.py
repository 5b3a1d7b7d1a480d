"""Label matrices and the training weights that go with them.

* :func:`label_matrix`: label sets -> an ``n x C`` float32 0/1 matrix in the taxonomy's column
  order, closed under ancestors (a category implies its ancestors).
* :func:`labels_from_paths`: dataset category paths -> label sets on a (pruned) taxonomy.
* :class:`LabelWeighting`: the ``class_weight_vector`` and ``sample_weight`` arrays that
  :meth:`models.members.base.Member.fit` accepts: capped inverse-frequency weights for the
  positives of rare classes, and the positive-unlabelled (PU) correction for rule labels.

The PU correction: rule labels are positive-only. A product no rule fired on is *unlabelled*
for a category, not a negative, yet plain training reads it as a negative, so the model learns
to say "no" to every product the rules miss and its probabilities come out too low. We
**down-weight the negatives we cannot trust** (option (a) of the design): a 0 in row i, column c
is *reliable* only when the rules placed product i elsewhere in the tree at or above c's depth,
i.e. some level d <= depth(c) has a positive for i while c's ancestor at level d is not positive
(a product the rules put under Footwear is a trustworthy negative for "Clothing > Shorts"). Zeros
below the deepest labelled node of the product's path and every zero of a product no rule fired
on are unlabelled and get ``unlabelled_weight`` (e.g. 0.2) instead of 1.

Why not the prior-shift / Elkan-Noto alternative (divide scores by c = P(labelled | positive)
estimated on held-out labelled positives)? It assumes labels are *selected completely at random*
among positives. Rule labels are the opposite: a deterministic function of the title's words. A
classifier learns that function almost exactly, so the held-out estimate of c is close to 1 and
the correction does next to nothing, while a uniform rescaling raises every score of a class
alike, false positives included, which costs the precision this project favours. Down-weighting
works where the labels are missing: on products the rules did not cover.

Turn it off with ``LabelWeighting(pu_correction=False)`` to measure it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np

from models.errors import ConfigError, DataError
from prodcat.taxonomy import Taxonomy

__all__ = ["LabelWeighting", "TrainingWeights", "label_matrix", "labels_from_paths", "reliable_negatives"]


def label_matrix(label_sets: Sequence[Iterable[str]], taxonomy: Taxonomy) -> np.ndarray:
    """An ``n x len(taxonomy)`` float32 0/1 matrix, closed under ancestors.

    >>> tax = Taxonomy.from_paths([["Shoes", "Sneakers"], ["Bags"]])  # columns: Bags, Shoes, Sneakers
    >>> label_matrix([{tax.find(["Shoes", "Sneakers"])}, set()], tax).tolist()
    [[0.0, 1.0, 1.0], [0.0, 0.0, 0.0]]
    """
    try:
        raw = taxonomy.to_matrix(label_sets)
    except KeyError as exc:
        raise DataError(f"{exc.args[0]}; map labels onto the taxonomy first (labels_from_paths)") from None
    return taxonomy.close_matrix(raw, inplace=True).astype(np.float32)


def labels_from_paths(paths: Iterable[Sequence[str]], taxonomy: Taxonomy) -> list[set[str]]:
    """For each category path, the deepest taxonomy category along it (an empty set if none)."""
    out: list[set[str]] = []
    for path in paths:
        found = taxonomy.find_deepest(path) if path else None
        out.append({found} if found is not None else set())
    return out


def _check(y: np.ndarray, taxonomy: Taxonomy | None = None) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 2 or (taxonomy is not None and y.shape[1] != len(taxonomy)):
        width = len(taxonomy) if taxonomy is not None else "C"
        raise DataError(f"expected a label matrix of shape (n, {width}), received shape {y.shape}; "
                        "build it with label_matrix(label_sets, taxonomy)")
    return y > 0.5


def reliable_negatives(y: np.ndarray, taxonomy: Taxonomy) -> np.ndarray:
    """Boolean ``n x C``: the zeros of ``y`` that are trustworthy negatives under positive-only labels.

    Zero (i, c) is reliable when, at some level d <= depth(c), row i has a positive while c's
    ancestor-or-self at level d is not positive (the labels put the product elsewhere). Positives
    are reported as False.
    """
    pos = _check(y, taxonomy)
    n, n_classes = pos.shape
    depth = np.array([taxonomy.depth(c) for c in taxonomy.ids])
    reliable = np.zeros((n, n_classes), dtype=bool)
    for level in range(1, taxonomy.max_depth + 1):
        labelled_here = pos[:, depth == level].any(axis=1)  # row has a positive at this level
        deep_enough = np.flatnonzero(depth >= level)
        ancestor = np.array([taxonomy.index(taxonomy.at_level(taxonomy.id_at(c), level)) for c in deep_enough],
                            dtype=np.int64)
        elsewhere = labelled_here[:, None] & ~pos[:, ancestor] if len(ancestor) else np.zeros((n, 0), bool)
        reliable[:, deep_enough] |= elsewhere
    return reliable & ~pos


class TrainingWeights(NamedTuple):
    """What :meth:`Member.fit` takes besides features and labels: ``member.fit(x, y, **weights._asdict())``."""

    class_weight_vector: np.ndarray | None  # (C,) weight of each class's positive entries
    sample_weight: np.ndarray | None  # (n, C) weight of each entry (the PU correction)


class LabelWeighting:
    """Training weights for a label matrix: class imbalance and the PU correction (module docstring).

    ``positive_power``/``positive_cap``: a class's positives weigh ``min(cap, (n_neg / n_pos) **
    power)`` (at least 1); power 0 turns class balancing off. Square root and a low cap because
    false positives are expensive here: full inverse frequency would push rare classes over the
    threshold on weak evidence. ``pu_correction`` down-weights unlabelled zeros to
    ``unlabelled_weight``; use it for rule labels, not for human labels.

    >>> tax = Taxonomy.from_paths([["Shoes", "Sneakers"], ["Bags"]])
    >>> y = label_matrix([{tax.find(["Bags"])}, {tax.find(["Shoes"])}, set()], tax)
    >>> tax.ids == (tax.find(["Bags"]), tax.find(["Shoes"]), tax.find(["Shoes", "Sneakers"]))
    True
    >>> LabelWeighting(pu_correction=True, unlabelled_weight=0.25).compute(y, tax).sample_weight.tolist()
    [[1.0, 1.0, 1.0], [1.0, 1.0, 0.25], [0.25, 0.25, 0.25]]
    """

    def __init__(self, *, positive_power: float = 0.5, positive_cap: float = 10.0, pu_correction: bool = False,
                 unlabelled_weight: float = 0.2) -> None:
        if positive_power < 0 or positive_cap < 1:
            raise ConfigError(f"expected positive_power >= 0 and positive_cap >= 1, received "
                              f"positive_power={positive_power}, positive_cap={positive_cap}")
        if not 0.0 <= unlabelled_weight <= 1.0:
            raise ConfigError(f"expected unlabelled_weight in [0, 1], received {unlabelled_weight}")
        self.positive_power = positive_power
        self.positive_cap = positive_cap
        self.pu_correction = pu_correction
        self.unlabelled_weight = unlabelled_weight

    def get_config(self) -> dict[str, Any]:
        return {"positive_power": self.positive_power, "positive_cap": self.positive_cap,
                "pu_correction": self.pu_correction, "unlabelled_weight": self.unlabelled_weight}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> LabelWeighting:
        return cls(**config)

    def class_weight_vector(self, y: np.ndarray) -> np.ndarray | None:
        """(C,) float32 positive weights; ``None`` when ``positive_power`` is 0."""
        pos = _check(y)
        if self.positive_power == 0:
            return None
        n_pos = pos.sum(axis=0)
        ratio = (len(pos) - n_pos) / np.maximum(n_pos, 1)  # a class without positives weighs nothing extra
        return np.clip(ratio**self.positive_power, 1.0, self.positive_cap).astype(np.float32)

    def sample_weight(self, y: np.ndarray, taxonomy: Taxonomy) -> np.ndarray | None:
        """(n, C) float32 entry weights: 1, or ``unlabelled_weight`` for unreliable zeros; ``None`` when off."""
        pos = _check(y, taxonomy)
        if not self.pu_correction:
            return None
        trusted = pos | reliable_negatives(pos, taxonomy)
        return np.where(trusted, 1.0, self.unlabelled_weight).astype(np.float32)

    def compute(self, y: np.ndarray, taxonomy: Taxonomy) -> TrainingWeights:
        """Both weights for ``y``: pass them to ``Member.fit`` with ``**weights._asdict()``."""
        return TrainingWeights(self.class_weight_vector(y), self.sample_weight(y, taxonomy))
