"""An MLP on the product's image vector; abstains on products without one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import keras
import numpy as np

from models.errors import ConfigError
from models.featuriser import FeatureKind, InputSpec
from models.members.keras_member import KerasMember

__all__ = ["ImageHead"]


class ImageHead(KerasMember):
    """Dropout -> ReLU layer (the embedding) -> one sigmoid per category, on the image vector.

    Rows whose ``<image>_mask`` is 0 have no image: training skips them, and
    :meth:`predict_proba`/:meth:`embed` return NaN rows for them (an abstention). The ensemble
    must leave the member out for those rows rather than read NaN as 0 or substitute the
    training prior: a prior would pull every image-less product towards the frequent classes.
    """

    name = "image_head"
    consumes: ClassVar[frozenset[FeatureKind]] = frozenset({"dense", "mask"})

    def __init__(self, inputs: Mapping[str, InputSpec | Mapping[str, Any]], *, hidden: int = 256,
                 dropout: float = 0.3, l2: float = 1e-5, **kwargs: Any) -> None:
        super().__init__(inputs, **kwargs)
        kinds = sorted(spec.kind for spec in self.inputs.values())
        if kinds != ["dense", "mask"]:
            raise ConfigError(f"member 'image_head' expected one dense field (vector and mask), received kinds "
                              f"{kinds}; list the image field under members.image_head.fields")
        if hidden < 1 or not 0 <= dropout < 1:
            raise ConfigError(f"expected hidden >= 1 and 0 <= dropout < 1, received hidden={hidden}, dropout={dropout}")
        self.hidden, self.dropout, self.l2 = hidden, dropout, l2
        self._vector = next(name for name, spec in self.inputs.items() if spec.kind == "dense")
        self._mask = next(name for name, spec in self.inputs.items() if spec.kind == "mask")

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "hidden": self.hidden, "dropout": self.dropout, "l2": self.l2}

    def _available(self, features: dict[str, np.ndarray], n: int) -> np.ndarray:
        return np.asarray(features[self._mask]).reshape(n) > 0.5

    def _network(self, inputs: dict[str, Any], n_classes: int) -> tuple[Any, Any]:
        # Multiplying by the mask keeps the mask an input of the graph and zeroes absent rows.
        x = keras.layers.Multiply(name="masked")([inputs[self._vector], inputs[self._mask]])
        x = keras.layers.Dropout(self.dropout)(x)
        embedding = keras.layers.Dense(self.hidden, activation="relu",
                                       kernel_regularizer=keras.regularizers.L2(self.l2),
                                       name="embedding")(x)
        x = keras.layers.Dropout(self.dropout)(embedding)
        return embedding, keras.layers.Dense(n_classes, activation="sigmoid", name="probabilities")(x)
