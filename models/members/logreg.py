"""Logistic regression on TF-IDF and one-hot categoricals: the "wide" linear baseline."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import keras
import numpy as np

from models.errors import NotFittedError
from models.featuriser import FeatureKind, InputSpec
from models.members.blocks import wide_vector
from models.members.keras_member import KerasMember

__all__ = ["LogReg"]


class LogReg(KerasMember):
    """One sigmoid unit per category over the sparse wide vector (one Dense layer, L2-regularised).

    Its weights are readable: :meth:`coefficients` splits the kernel per feature, so a decision
    is explained by the tokens with the largest ``tf_idf value x weight`` (token names from
    :meth:`models.featuriser.Featuriser.vocabulary`). :meth:`embed` returns the logits (n x C):
    a one-layer model's only hidden representation is its input.
    """

    name = "logreg"
    consumes: ClassVar[frozenset[FeatureKind]] = frozenset({"tf_idf", "categorical"})
    bias_layer: ClassVar[str] = "linear"

    def __init__(self, inputs: Mapping[str, InputSpec | Mapping[str, Any]], *, l2: float = 1e-7,
                 learning_rate: float = 5e-3, epochs: int = 30, patience: int = 3, **kwargs: Any) -> None:
        super().__init__(inputs, learning_rate=learning_rate, epochs=epochs, patience=patience, **kwargs)
        self.l2 = l2
        self._segments: list[tuple[str, int]] = []  # (feature, width) in kernel row order, set by _network

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "l2": self.l2}

    def _network(self, inputs: dict[str, Any], n_classes: int) -> tuple[Any, Any]:
        wide, self._segments = wide_vector(inputs, self.inputs)
        logits = keras.layers.Dense(n_classes, kernel_regularizer=keras.regularizers.L2(self.l2),
                                    name="linear")(wide)
        return logits, keras.layers.Activation("sigmoid", name="probabilities")(logits)

    def coefficients(self) -> dict[str, np.ndarray]:
        """Per feature, its (width x C) block of the weight matrix (rows follow the feature's vocabulary)."""
        if self._model is None:
            raise NotFittedError("member 'logreg' is not fitted; call fit(features, y) or load(directory)")
        kernel = np.asarray(self._model.get_layer("linear").kernel)
        out, start = {}, 0
        for name, width in self._segments:
            out[name] = kernel[start:start + width]
            start += width
        return out

    def intercepts(self) -> np.ndarray:
        """(C,) biases: the log-odds of each category for an empty product."""
        if self._model is None:
            raise NotFittedError("member 'logreg' is not fitted; call fit(features, y) or load(directory)")
        return np.asarray(self._model.get_layer("linear").bias)
