"""The stream's business logic as plain functions: raw events in, documents and messages out.

Agents call these; tests call them without Kafka.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

import orjson

from prodcat.categoriser import Categorisation
from prodcat.errors import InvalidRecord, Stage
from prodcat.limits import InputLimits
from prodcat.record import ProductRecord, parse_record
from prodcat.rules import RuleSet
from prodcat.taxonomy import Taxonomy
from runtime.deadletter import RawEvent
from runtime.sinks.elastic import Document
from streams.dedup import fingerprint


@dataclass(frozen=True)
class Parsed:
    """An event that parsed: its record and the fingerprint of its content under the current model."""

    event: RawEvent
    record: ProductRecord
    fingerprint: str


@dataclass
class Classified:
    """A product that made it through: its cleaned record and what the categoriser decided."""

    event: RawEvent
    record: ProductRecord
    result: Categorisation
    fingerprint: str = ""


def parse_events(events: Sequence[RawEvent], limits: InputLimits, model_version: str) -> list[Parsed | InvalidRecord]:
    """Parse and validate each event: its :class:`Parsed` record, or the :class:`InvalidRecord` why not."""
    out: list[Parsed | InvalidRecord] = []
    for event in events:
        try:
            record = parse_record(event.value, limits=limits)
        except InvalidRecord as exc:
            out.append(exc)
        else:
            out.append(Parsed(event, record, fingerprint(record, model_version)))
    return out


def newest_per_product(items: Sequence[Parsed]) -> tuple[list[Parsed], int]:
    """Each product once, in its newest version (ties: the later offset), as Elasticsearch would keep it;
    returns the kept items in batch order and how many older versions were dropped."""
    newest: dict[str, int] = {}
    for i, item in enumerate(items):
        j = newest.get(item.record.id)
        if j is None or updated_version(item.record) >= updated_version(items[j].record):
            newest[item.record.id] = i
    kept = sorted(newest.values())
    return [items[i] for i in kept], len(items) - len(kept)


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


def build_documents(items: Sequence[Classified], taxonomy: Taxonomy, model_version: str, rules: RuleSet | None,
                    limits: InputLimits) -> list[Document | InvalidRecord]:
    """The Elasticsearch documents of a batch (with the legacy rules' labels when ``rules`` is given);
    a document larger than ``limits.document_bytes`` is refused, not stored."""
    labels = rules.apply_many([c.record for c in items]) if rules is not None else None
    out: list[Document | InvalidRecord] = []
    for i, item in enumerate(items):
        source = product_document(item, taxonomy, model_version)
        if labels is not None:
            source["rule_labels"] = sorted(labels[i].labels)
        size = len(orjson.dumps(source))
        if size > limits.document_bytes:
            out.append(InvalidRecord(f"document of {item.record.id!r:.80} has {size:,} bytes, more than "
                                     f"PRODCAT_MAX_DOCUMENT_BYTES={limits.document_bytes:,}", stage=Stage.DOCUMENT))
        else:
            out.append(Document(item.record.id, updated_version(item.record), source))
    return out


def level_categories(item: Classified, taxonomy: Taxonomy) -> tuple[str, str]:
    """The product's best-scoring level-2 category id and its parent ("" where it has none): Milvus' filter."""
    scores = item.result.scores

    def best(level: int) -> str:
        ids = [c for c in item.result.categories if taxonomy.depth(c) == level]
        return max(ids, key=lambda c: (scores.get(c, 0.0), c)) if ids else ""

    level2 = best(2)
    return (taxonomy.parent(level2) or "", level2) if level2 else (best(1), "")


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
