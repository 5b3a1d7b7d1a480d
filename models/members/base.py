"""The interface of an ensemble member: named feature arrays in, one probability per category out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

__all__ = ["Member", "Validation"]

# (features, y) or (features, y, sample_weight): held-out data for early stopping.
Validation = tuple[dict[str, np.ndarray], np.ndarray] | tuple[dict[str, np.ndarray], np.ndarray, np.ndarray | None]


class Member(ABC):
    """One model of the ensemble. Hyper-parameters only in ``__init__``; learned state only from ``fit``/``load``.

    Contract shared by every member (checked by ``tests/models/members/test_contract.py``):

    * ``features`` is the dict :meth:`models.featuriser.Featuriser.transform` returns; a member
      reads the keys named in its ``inputs`` and ignores the others.
    * ``y`` is an ``n x C`` 0/1 matrix in taxonomy column order (:func:`models.labels.label_matrix`).
    * :meth:`predict_proba` returns float32 ``n x C`` in [0, 1], one independent sigmoid per
      category. A member may **abstain** on a row it has no input for (the image head on a
      product without an image): that row is all NaN, in :meth:`embed` too. The ensemble must
      average over the members that did not abstain (``np.nanmean``-style), never treat NaN as 0.
    * :meth:`embed` returns the penultimate representation, float32 ``n x d``.
    * ``from_config(get_config())`` is an untrained copy; ``load(save(dir))`` predicts identically.
    """

    name: ClassVar[str]

    @abstractmethod
    def fit(self, features: dict[str, np.ndarray], y: np.ndarray, *, sample_weight: np.ndarray | None = None,
            class_weight_vector: np.ndarray | None = None, validation: Validation | None = None,
            warm_start_from: Member | None = None) -> Member:
        """Train from scratch, or from ``warm_start_from``'s weights (fine-tuning); returns ``self``.

        ``sample_weight`` is (n,) per row or (n, C) per entry (the PU weights of
        :class:`models.labels.LabelWeighting`); ``class_weight_vector`` (C,) weighs each class's
        positive entries (class imbalance); ``validation`` enables early stopping.
        ``warm_start_from``: a fitted member of the same kind, inputs and number of classes whose
        weights the new network starts from instead of fresh ones; it is not modified.
        """

    @abstractmethod
    def predict_proba(self, features: dict[str, np.ndarray]) -> np.ndarray:
        """float32 (n, C) probabilities; NaN rows where the member abstains."""

    @abstractmethod
    def embed(self, features: dict[str, np.ndarray]) -> np.ndarray:
        """float32 (n, d) penultimate-layer embeddings; NaN rows where the member abstains."""

    @abstractmethod
    def save(self, directory: str | Path) -> None:
        """Write the config and learned weights into ``directory``."""

    @classmethod
    @abstractmethod
    def load(cls, directory: str | Path) -> Member:
        """Rebuild a trained member from :meth:`save` output."""

    @abstractmethod
    def get_config(self) -> dict[str, Any]:
        """The constructor arguments, JSON-serialisable."""

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Member:
        """An untrained member with the given constructor arguments."""
        return cls(**config)

    def clone(self) -> Member:
        """An untrained copy with the same hyper-parameters (what retraining starts from)."""
        return self.from_config(self.get_config())
