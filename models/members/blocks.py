"""Network pieces several members share: the sparse wide vector and embeddings of ids."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras

from models.featuriser import InputSpec

__all__ = ["MaskedMean", "concat", "embedded_categoricals", "token_embedding", "wide_vector"]


class MaskedMean(keras.layers.Layer):
    """Mean of word vectors over the non-padding positions; zeros for an empty text.

    Keras' masked GlobalAveragePooling1D divides by the number of words, which is 0 for an
    empty title or description and turns the whole batch's loss into NaN.
    """

    def call(self, vectors: Any, token_ids: Any) -> Any:
        present = keras.ops.expand_dims(keras.ops.cast(keras.ops.greater(token_ids, 0), vectors.dtype), -1)
        total = keras.ops.sum(vectors * present, axis=1)
        return total / keras.ops.maximum(keras.ops.sum(present, axis=1), 1.0)

    def compute_output_shape(self, vectors_shape: tuple[int | None, ...], token_ids_shape: Any = None) -> tuple:
        return (vectors_shape[0], vectors_shape[2])


def concat(tensors: list[Any], name: str | None = None) -> Any:
    """Concatenate along the last axis; a single tensor passes through (Keras needs two or more)."""
    if len(tensors) == 1:
        return tensors[0]
    return keras.layers.Concatenate(name=name)(tensors)


def wide_vector(inputs: Mapping[str, Any], specs: Mapping[str, InputSpec]) -> tuple[Any, list[tuple[str, int]]]:
    """TF-IDF vectors and one-hot categoricals side by side, plus (feature, width) segments in order.

    The segments let a linear layer's kernel be split back into per-feature, per-token weights.
    """
    parts: list[Any] = []
    segments: list[tuple[str, int]] = []
    for name, spec in specs.items():
        if spec.kind == "tf_idf":
            parts.append(inputs[name])
            segments.append((name, spec.width))
        elif spec.kind == "categorical":
            assert spec.vocabulary_size is not None
            parts.append(keras.layers.CategoryEncoding(spec.vocabulary_size, output_mode="one_hot",
                                                       name=f"{name}_onehot")(inputs[name]))
            segments.append((name, spec.vocabulary_size))
    return (concat(parts, name="wide_concat") if parts else None), segments


def embedded_categoricals(inputs: Mapping[str, Any], specs: Mapping[str, InputSpec]) -> list[Any]:
    """One (n, embedding_dim) tensor per categorical input, sized by the feature config."""
    out = []
    for name, spec in specs.items():
        if spec.kind == "categorical":
            assert spec.vocabulary_size is not None and spec.embedding_dim is not None
            embedded = keras.layers.Embedding(spec.vocabulary_size, spec.embedding_dim, name=f"{name}_embedding")(
                inputs[name])
            out.append(keras.layers.Flatten(name=f"{name}_flat")(embedded))
    return out


def token_embedding(name: str, spec: InputSpec, dim: int, *, mask_zero: bool, l2: float = 0.0) -> keras.layers.Layer:
    """A word-embedding layer for a token-id input (id 0 is padding)."""
    assert spec.vocabulary_size is not None
    regularizer = keras.regularizers.L2(l2) if l2 else None
    return keras.layers.Embedding(spec.vocabulary_size, dim, mask_zero=mask_zero,
                                  embeddings_regularizer=regularizer, name=f"{name}_embedding")
