"""Wide & Deep (Cheng et al. 2016): a linear model on sparse features plus an MLP on embeddings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import keras

from models.errors import ConfigError
from models.featuriser import FeatureKind, InputSpec
from models.members.blocks import MaskedMean, concat, embedded_categoricals, token_embedding, wide_vector
from models.members.keras_member import KerasMember

__all__ = ["WideDeep"]


class WideDeep(KerasMember):
    """Wide: TF-IDF + one-hot categoricals -> logits. Deep: categorical embeddings (sizes from the
    feature config) and mean-pooled word embeddings of each text field -> ReLU layers -> logits.
    The two logits are summed before one sigmoid per category; the embedding is the deep tower's
    last hidden layer (the wide part memorises tokens, the deep part generalises across them).
    """

    name = "wide_deep"
    consumes: ClassVar[frozenset[FeatureKind]] = frozenset({"tf_idf", "tokens", "categorical"})
    bias_layer: ClassVar[str] = "deep_logits"  # the wide logits' bias stays 0: one bias per class is enough

    def __init__(self, inputs: Mapping[str, InputSpec | Mapping[str, Any]], *, hidden: Sequence[int] = (128, 64),
                 word_dim: int = 32, dropout: float = 0.2, l2: float = 1e-6, **kwargs: Any) -> None:
        super().__init__(inputs, **kwargs)
        if not hidden or any(units < 1 for units in hidden) or word_dim < 1 or not 0 <= dropout < 1:
            raise ConfigError(f"expected hidden units >= 1 (at least one layer), word_dim >= 1 and "
                              f"0 <= dropout < 1, received hidden={list(hidden)}, word_dim={word_dim}, "
                              f"dropout={dropout}")
        kinds = {spec.kind for spec in self.inputs.values()}
        if not kinds & {"tf_idf", "categorical"} or not kinds & {"tokens", "categorical"}:
            raise ConfigError(f"member 'wide_deep' needs a text field with outputs tf_idf and int, or a "
                              f"categorical field; received features of kind {sorted(kinds)}")
        self.hidden, self.word_dim, self.dropout, self.l2 = [int(u) for u in hidden], word_dim, dropout, l2

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "hidden": self.hidden, "word_dim": self.word_dim, "dropout": self.dropout,
                "l2": self.l2}

    def _network(self, inputs: dict[str, Any], n_classes: int) -> tuple[Any, Any]:
        regularizer = keras.regularizers.L2(self.l2)
        wide, _ = wide_vector(inputs, self.inputs)
        wide_logits = keras.layers.Dense(n_classes, kernel_regularizer=regularizer, name="wide_logits")(wide)
        deep_parts = embedded_categoricals(inputs, self.inputs)
        for name, spec in self.inputs.items():
            if spec.kind == "tokens":
                words = token_embedding(name, spec, self.word_dim, mask_zero=False)(inputs[name])
                deep_parts.append(MaskedMean(name=f"{name}_mean")(words, inputs[name]))
        x = concat(deep_parts, name="deep_concat")
        for i, units in enumerate(self.hidden):
            last = i == len(self.hidden) - 1
            x = keras.layers.Dense(units, activation="relu", kernel_regularizer=regularizer,
                                   name="embedding" if last else f"deep_{i}")(x)
            embedding = x
            x = keras.layers.Dropout(self.dropout)(x)
        deep_logits = keras.layers.Dense(n_classes, name="deep_logits")(x)
        logits = keras.layers.Add(name="logits")([wide_logits, deep_logits])
        return embedding, keras.layers.Activation("sigmoid", name="probabilities")(logits)
