"""The interface every categoriser implements: the legacy rules now, the model ensemble later."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from pydantic import BaseModel, Field

from prodcat.record import ProductRecord


class Categorisation(BaseModel):
    """What a categoriser decided for one product."""

    categories: list[str] = Field(description="decided category ids, closed under ancestors")
    scores: dict[str, float] = Field(default_factory=dict, description="category id -> score in [0, 1]")
    explanation: dict[str, list[str]] = Field(
        default_factory=dict, description="category id -> what drove it (rule ids, top tokens)"
    )
    uncertainty: float | None = Field(None, description="0 = certain, 1 = on the threshold")


class Categoriser(ABC):
    """Turns a batch of cleaned records into categorisations, one per record, in order."""

    version: str

    @abstractmethod
    def categorise_batch(self, records: Sequence[ProductRecord]) -> list[Categorisation]:
        """Categorise ``records``; never raises for a single bad record."""
