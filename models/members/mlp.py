"""A multi-layer perceptron on TF-IDF and one-hot categoricals."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import keras

from models.errors import ConfigError
from models.featuriser import FeatureKind, InputSpec
from models.members.blocks import wide_vector
from models.members.keras_member import KerasMember

__all__ = ["MLP"]


class MLP(KerasMember):
    """Dropout on the sparse wide vector, ReLU hidden layers, one sigmoid per category.

    The last hidden layer is the embedding. Input dropout matters most: TF-IDF vectors are
    wide and sparse, and a network this size memorises a few thousand titles otherwise.
    """

    name = "mlp"
    consumes: ClassVar[frozenset[FeatureKind]] = frozenset({"tf_idf", "categorical"})

    def __init__(self, inputs: Mapping[str, InputSpec | Mapping[str, Any]], *, hidden: Sequence[int] = (256,),
                 dropout: float = 0.3, l2: float = 1e-6, **kwargs: Any) -> None:
        super().__init__(inputs, **kwargs)
        if not hidden or any(units < 1 for units in hidden) or not 0 <= dropout < 1:
            raise ConfigError(f"expected hidden units >= 1 (at least one layer) and 0 <= dropout < 1, "
                              f"received hidden={list(hidden)}, dropout={dropout}")
        self.hidden, self.dropout, self.l2 = [int(u) for u in hidden], dropout, l2

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "hidden": self.hidden, "dropout": self.dropout, "l2": self.l2}

    def _network(self, inputs: dict[str, Any], n_classes: int) -> tuple[Any, Any]:
        x, _ = wide_vector(inputs, self.inputs)
        x = keras.layers.Dropout(self.dropout, name="input_dropout")(x)
        for i, units in enumerate(self.hidden):
            last = i == len(self.hidden) - 1
            x = keras.layers.Dense(units, activation="relu", kernel_regularizer=keras.regularizers.L2(self.l2),
                                   name="embedding" if last else f"hidden_{i}")(x)
            embedding = x
            x = keras.layers.Dropout(self.dropout)(x)
        probabilities = keras.layers.Dense(n_classes, activation="sigmoid", name="probabilities")(x)
        return embedding, probabilities
