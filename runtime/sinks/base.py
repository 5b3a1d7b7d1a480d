"""What every sink is: ``write(items) -> WriteResult`` with the failures of single records.

A sink raises only for an outage (the service is unreachable or overloaded) or a failure of the
whole call; :class:`~runtime.policy.ErrorPolicy` decides what to do with either. A record the
service refused on its own merits comes back in ``failed``, by its position in ``items``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol, TypeVar

T_contra = TypeVar("T_contra", contravariant=True)


class Message(NamedTuple):
    """One Kafka message to produce."""

    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, str | bytes | None]] | None = None


@dataclass(frozen=True)
class WriteResult:
    """Per-record outcome of a write: positions refused (with the reason) or refused as stale."""

    failed: dict[int, str] = field(default_factory=dict)
    stale: frozenset[int] = frozenset()  # an older version than the stored one: nothing to publish


class Sink(Protocol[T_contra]):
    """Elasticsearch, Milvus and Kafka behind one verb."""

    async def write(self, items: Sequence[T_contra]) -> WriteResult: ...
