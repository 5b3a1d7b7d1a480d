"""One micro-batch through every stage; the agent acks its events once `deliver` has returned.

:meth:`BatchProcessor.prepare`: parse -> skip unchanged -> image vectors -> categorise (CPU work in
an executor, never on the event loop). :meth:`BatchProcessor.deliver`: sinks (Elasticsearch,
Milvus, Kafka) -> remember what was written. Split in two so the agent can prepare batch N+1
while batch N is still being written.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from prodcat.categoriser import Categoriser
from prodcat.limits import InputLimits
from prodcat.record import ProductRecord
from prodcat.rules import RuleSet
from prodcat.taxonomy import Taxonomy
from streams.deadletter import DeadLetter
from streams.dedup import UnchangedFilter, fingerprint
from streams.labelling import LabellingGate, LabellingPolicy, candidates, request_message
from streams.metrics import WorkerMetrics
from streams.pipeline import (
    Classified,
    RawEvent,
    categorise,
    categorised_message,
    parse_events,
    product_document,
    updated_version,
)
from streams.sinks.elastic import Document, ElasticSink
from streams.sinks.kafka import KafkaSink


class ImageStage(Protocol):
    """Fetches, caches and embeds product images (see embedder/)."""

    async def vectors(self, records: Sequence[ProductRecord]) -> dict[str, np.ndarray]: ...


class ImageSink(Protocol):
    """Writes image vectors with their level-1/2 categories (Milvus)."""

    async def write(self, items: Sequence[tuple[Classified, np.ndarray]], taxonomy: Taxonomy, version: str) -> None: ...

    async def ping(self) -> bool: ...


class CategoriserSlot:
    """The categoriser in use. A promoted model replaces it between batches (hot swap)."""

    def __init__(self, categoriser: Categoriser) -> None:
        self.current = categoriser

    def swap(self, categoriser: Categoriser) -> None:
        self.current = categoriser


@dataclass(frozen=True)
class Topics:
    categorised: str
    deadletter: str
    label_requests: str


@dataclass
class Prepared:
    """A categorised batch waiting for its sinks."""

    categoriser: Categoriser
    classified: list[Classified]
    rejected: list[DeadLetter]
    vectors: dict[str, np.ndarray]
    prints: list[tuple[str, str]]
    docs: list[Document]
    skipped: int


@dataclass
class BatchReport:
    written: int = 0
    skipped: int = 0
    rejected: int = 0
    label_requests: int = 0
    model_version: str = ""
    ids: list[str] = field(default_factory=list)


class BatchProcessor:
    """Everything between consuming a batch and acking it; no Faust in here, so tests drive it directly."""

    def __init__(self, *, slot: CategoriserSlot, elastic: ElasticSink, kafka: KafkaSink,
                 topics: Topics, cpu: Executor, metrics: WorkerMetrics, limits: InputLimits,
                 unchanged: UnchangedFilter | None = None, images: ImageStage | None = None,
                 image_sink: ImageSink | None = None, labelling: LabellingGate | None = None,
                 labelling_policy: LabellingPolicy = LabellingPolicy(), rules: RuleSet | None = None) -> None:
        self.slot, self.elastic, self.kafka = slot, elastic, kafka
        self.topics, self.cpu, self.metrics, self.limits = topics, cpu, metrics, limits
        self.unchanged, self.images, self.image_sink = unchanged, images, image_sink
        self.labelling, self.labelling_policy = labelling, labelling_policy
        # the legacy rules' labels are stored beside the model's: retraining starts from them
        self.rules = rules

    async def _cpu(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.cpu, fn, *args)

    async def prepare(self, events: Sequence[RawEvent]) -> Prepared:
        """Parse, skip unchanged products, embed images and categorise; nothing is written yet."""
        m = self.metrics
        categoriser = self.slot.current  # one model version for the whole batch
        version, taxonomy = categoriser.version, categoriser.taxonomy
        m.batch_size.observe(len(events))

        with m.stage("parse"):
            parsed, rejected = await self._cpu(parse_events, events, self.limits)
        # the same product twice in one batch: its last event wins, as it would in Elasticsearch
        latest = {record.id: i for i, (_, record) in enumerate(parsed)}
        skipped = len(parsed) - len(latest)
        parsed = [parsed[i] for i in sorted(latest.values())]
        prints = [(record.id, fingerprint(record, version)) for _, record in parsed]
        if self.unchanged is not None:
            with m.stage("dedup"):
                same = await self.unchanged.unchanged(prints)
            skipped += sum(same)
            parsed = [p for p, s in zip(parsed, same, strict=True) if not s]
            prints = [p for p, s in zip(prints, same, strict=True) if not s]

        vectors: dict[str, np.ndarray] = {}
        if self.images is not None and parsed:
            with m.stage("embed"):
                vectors = await self.images.vectors([record for _, record in parsed])

        with m.stage("model"):
            outcome = await self._cpu(categorise, parsed, categoriser, vectors)
        rejected += outcome.rejected
        with m.stage("documents"):
            docs = [Document(c.record.id, updated_version(c.record), product_document(c, taxonomy, version))
                    for c in outcome.classified]
            if self.rules is not None:
                labels = await self._cpu(self.rules.apply_many, [c.record for c in outcome.classified])
                for doc, match in zip(docs, labels, strict=True):
                    doc.source["rule_labels"] = sorted(match.labels)
        return Prepared(categoriser, outcome.classified, rejected, vectors, prints, docs, skipped)

    async def deliver(self, batch: Prepared) -> BatchReport:
        """Write a prepared batch to every sink; when this returns, its events may be acked."""
        m = self.metrics
        version, taxonomy = batch.categoriser.version, batch.categoriser.taxonomy
        report = BatchReport(model_version=version, skipped=batch.skipped)
        rejected, vectors, prints = list(batch.rejected), batch.vectors, batch.prints
        with m.stage("elasticsearch"):
            written = await self.elastic.write(batch.docs)
        failed = written.failed
        rejected += [c.event.reject("sink", failed[c.record.id]) for c in batch.classified if c.record.id in failed]
        ok = [c for c in batch.classified if c.record.id not in failed]

        if self.image_sink is not None:
            with m.stage("milvus"):
                await self.image_sink.write([(c, vectors[c.record.id]) for c in ok if c.record.id in vectors],
                                            taxonomy, version)

        wanted = candidates(ok, self.labelling_policy) if self.labelling is not None else []
        admitted = await self.labelling.admit(wanted) if wanted else []

        with m.stage("kafka"):
            await self.kafka.send_many(
                [(self.topics.deadletter, r.key.encode() if r.key else None, r.model_dump_json().encode())
                 for r in rejected]
                + [(self.topics.categorised, c.record.id.encode(), categorised_message(c, taxonomy, version))
                   for c in ok]
                + [(self.topics.label_requests, a.item.record.id.encode(), request_message(a, taxonomy, version))
                   for a in admitted])

        if self.unchanged is not None:
            done = {c.record.id for c in ok}
            await self.unchanged.remember([p for p in prints if p[0] in done])

        m.skipped.inc(report.skipped)
        for r in rejected:
            m.deadletters.labels(r.stage).inc()
        for a in admitted:
            m.label_requests.labels(a.reason.split(" ")[0]).inc()
        m.events_out.labels("elasticsearch").inc(len(ok))
        report.written, report.rejected, report.label_requests = len(ok), len(rejected), len(admitted)
        report.ids = [c.record.id for c in ok]
        return report
