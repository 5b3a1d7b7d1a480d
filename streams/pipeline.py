"""The stream's business logic as plain functions: raw events in, documents and messages out.

Agents call these; tests call them without Kafka.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
import orjson

from prodcat.categoriser import Categorisation, Categoriser
from prodcat.errors import InvalidRecord
from prodcat.limits import InputLimits
from prodcat.record import ProductRecord, parse_record
from prodcat.taxonomy import Taxonomy
from streams.deadletter import DeadLetter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RawEvent:
    """One Kafka message as received: the bytes are kept so a reject can be replayed exactly."""

    value: bytes
    key: bytes | None = None
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None

    def reject(self, stage: str, reason: str) -> DeadLetter:
        return DeadLetter.of(self.value, stage=stage, reason=reason, key=self.key,
                             source_topic=self.topic, partition=self.partition, offset=self.offset)


@dataclass
class Classified:
    """A product that made it through: its cleaned record and what the categoriser decided."""

    event: RawEvent
    record: ProductRecord
    result: Categorisation


@dataclass
class BatchOutcome:
    classified: list[Classified] = field(default_factory=list)
    rejected: list[DeadLetter] = field(default_factory=list)


def parse_events(events: Sequence[RawEvent], limits: InputLimits) -> tuple[list[tuple[RawEvent, ProductRecord]], list[DeadLetter]]:
    """Parse and validate each event; a bad one becomes a dead letter, never an exception."""
    good: list[tuple[RawEvent, ProductRecord]] = []
    bad: list[DeadLetter] = []
    for event in events:
        try:
            good.append((event, parse_record(event.value, limits=limits)))
        except InvalidRecord as exc:
            bad.append(event.reject(exc.stage, exc.reason))
    return good, bad


def categorise(parsed: Sequence[tuple[RawEvent, ProductRecord]], categoriser: Categoriser,
               image_vectors: Mapping[str, np.ndarray] | None = None) -> BatchOutcome:
    """Categorise a batch; if the batch call fails, retry one by one so one bad record costs only itself."""
    outcome = BatchOutcome()
    if not parsed:
        return outcome
    records = [record for _, record in parsed]
    try:
        results = categoriser.categorise_batch(records, image_vectors)
    except Exception:  # noqa: BLE001 - isolate the culprit below
        log.exception("batch categorisation failed; retrying record by record")
        results = []
        for event, record in parsed:
            try:
                results.extend(categoriser.categorise_batch([record], image_vectors))
            except Exception as exc:  # noqa: BLE001
                results.append(None)
                outcome.rejected.append(event.reject("categorise", f"{type(exc).__name__}: {exc}"))
    for (event, record), result in zip(parsed, results, strict=True):
        if result is not None:
            outcome.classified.append(Classified(event, record, result))
    return outcome


def process_batch(events: Sequence[RawEvent], categoriser: Categoriser, limits: InputLimits) -> BatchOutcome:
    """Parse, validate, clean and categorise a batch (CPU work: run it off the event loop)."""
    parsed, rejected = parse_events(events, limits)
    outcome = categorise(parsed, categoriser)
    outcome.rejected[:0] = rejected
    return outcome


def updated_version(record: ProductRecord) -> int:
    """Elasticsearch external version: the record's updated_at in ms (0 when unknown = oldest)."""
    if record.updated_at is None:
        return 0
    return max(0, int(record.updated_at.timestamp() * 1000))


def product_document(item: Classified, taxonomy: Taxonomy, model_version: str) -> dict:
    """The Elasticsearch `products` document: cleaned fields plus categories with their ancestors."""
    doc = item.record.to_document()
    cats = sorted(item.result.categories, key=lambda c: (taxonomy.depth(c), c)) if taxonomy else item.result.categories
    doc.update(
        categories=cats,
        category_names=[" > ".join(taxonomy.path(c)) for c in cats],
        level1=sorted({c for c in cats if taxonomy.depth(c) == 1}),
        level2=sorted({c for c in cats if taxonomy.depth(c) == 2}),
        scores=item.result.scores,
        explanation=item.result.explanation,
        uncertainty=item.result.uncertainty,
        model_version=model_version,
        classified_at=datetime.now(timezone.utc).isoformat(),
    )
    return doc


def categorised_message(item: Classified, taxonomy: Taxonomy, model_version: str) -> bytes:
    """The products.categorised value: what downstream consumers need, nothing more."""
    cats = item.result.categories
    return orjson.dumps({
        "id": item.record.id,
        "categories": cats,
        "category_names": [" > ".join(taxonomy.path(c)) for c in cats],
        "scores": item.result.scores,
        "model_version": model_version,
        "updated_at": item.record.updated_at.isoformat() if item.record.updated_at else None,
    })
