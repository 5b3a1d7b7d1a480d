"""The interface every categoriser implements: the legacy rules now, the model ensemble later."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence

import numpy as np
from pydantic import BaseModel, Field

from prodcat.record import ProductRecord
from prodcat.taxonomy import Taxonomy


class Categorisation(BaseModel):
    """What a categoriser decided for one product."""

    categories: list[str] = Field(description="decided category ids, closed under ancestors")
    scores: dict[str, float] = Field(default_factory=dict, description="category id -> score in [0, 1]")
    explanation: dict[str, list[str]] = Field(
        default_factory=dict, description="category id -> what drove it (rule ids, top tokens)"
    )
    uncertainty: float | None = Field(None, description="0 = certain, 1 = on the threshold")
    disagreement: float | None = Field(None, description="0 = ensemble members agree, 1 = they split")


class Categoriser(ABC):
    """Turns a batch of cleaned records into categorisations, one per record, in order."""

    version: str
    taxonomy: Taxonomy  # the category tree its ids refer to; travels with the categoriser on a hot swap

    @abstractmethod
    def categorise_batch(self, records: Sequence[ProductRecord],
                         image_vectors: Mapping[str, np.ndarray] | None = None) -> list[Categorisation]:
        """Categorise ``records`` (with image vectors by product id where there are some)."""
