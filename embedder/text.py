"""The ``TextEncoder`` interface: texts in, L2-normalised float32 vectors out.

The text counterpart of :class:`embedder.base.Embedder`: a sentence encoder maps product titles
and category paths into one space where the dot product of two rows is their cosine similarity.
``models.semantic`` matches products to categories through it; another encoder (a bigger model,
a remote service) replaces the default by implementing these three members.

Encoders are synchronous and CPU-bound: call ``embed`` from a worker thread
(``asyncio.to_thread``), never on an event loop.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

__all__ = ["TextEncoder"]


class TextEncoder(ABC):
    """Maps texts to unit-length vectors whose dot product is their cosine similarity.

    ``version`` names the weights, the tokenizer *and* every choice that changes the vectors
    (pooling, maximum length): vectors of different versions must not be compared or cached
    side by side.
    """

    @property
    @abstractmethod
    def version(self) -> str:
        """Stable identifier of the model and its preprocessing."""

    @property
    @abstractmethod
    def dim(self) -> int:
        """Length of every vector ``embed`` returns."""

    @abstractmethod
    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return a ``(len(texts), dim)`` float32 array of L2-normalised rows (in input order)."""
