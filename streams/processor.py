"""One micro-batch through every stage; the agent acks its events once `deliver` has returned.

:meth:`BatchProcessor.prepare`: parse -> newest version per product -> skip unchanged -> image
vectors -> categorise -> documents (CPU work in an executor, never on the event loop).
:meth:`BatchProcessor.deliver`: Elasticsearch -> Milvus -> Kafka (results, labelling requests,
dead letters) -> remember what was written. Split in two so the agent can prepare batch N+1
while batch N is still being written.

Every stage runs through the :class:`~runtime.policy.ErrorPolicy`: an outage is waited out, a
record that fails on its own becomes a dead letter, and the rest of the batch goes on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Protocol, TypeVar

import numpy as np

from embedder.index import ImageVector
from prodcat.categoriser import Categoriser
from prodcat.errors import ConfigError, Stage
from prodcat.limits import InputLimits
from prodcat.record import ProductRecord
from prodcat.rules import RuleSet
from runtime.deadletter import DeadLetter, RawEvent, send
from runtime.policy import ErrorPolicy
from runtime.sinks.base import Message, Sink, WriteResult
from runtime.sinks.elastic import Document
from streams.dedup import UnchangedFilter
from streams.labelling import LabellingGate, LabellingSampler, request_message
from streams.pipeline import (
    Classified,
    Parsed,
    build_documents,
    categorised_message,
    level_categories,
    newest_per_product,
    parse_events,
)
from streams.worker_metrics import WorkerMetrics

T = TypeVar("T")


class ImageStage(Protocol):
    """Fetches, caches and embeds product images (see embedder/)."""

    async def vectors(self, records: Sequence[ProductRecord]) -> dict[str, np.ndarray]: ...


class ImageSink(Protocol):
    """Writes image vectors with their level-1/2 categories (Milvus)."""

    async def write(self, rows: Sequence[ImageVector]) -> WriteResult: ...

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
    docs: list[Document]
    dead: list[DeadLetter]
    vectors: dict[str, np.ndarray]
    skipped: int


class BatchProcessor:
    """Everything between consuming a batch and acking it; no Faust in here, so tests drive it directly."""

    def __init__(self, *, slot: CategoriserSlot, elastic: Sink[Document], kafka: Sink[Message],
                 topics: Topics, cpu: Executor, metrics: WorkerMetrics, limits: InputLimits,
                 policy: ErrorPolicy, unchanged: UnchangedFilter | None = None, images: ImageStage | None = None,
                 image_sink: ImageSink | None = None, labelling: LabellingGate | None = None,
                 labelling_sampler: LabellingSampler | None = None, rules: RuleSet | None = None) -> None:
        self.slot, self.elastic, self.kafka, self.policy = slot, elastic, kafka, policy
        self.topics, self.cpu, self.metrics, self.limits = topics, cpu, metrics, limits
        self.unchanged, self.images, self.image_sink = unchanged, images, image_sink
        if (labelling is None) != (labelling_sampler is None):  # the sampler asks, the gate dedups and caps
            raise ConfigError("Expected both labelling (the gate) and labelling_sampler, or neither. "
                              f"Received: labelling={labelling!r}, labelling_sampler={labelling_sampler!r}")
        self.labelling, self.labelling_sampler = labelling, labelling_sampler
        # the legacy rules' labels are stored beside the model's: retraining starts from them
        self.rules = rules

    def _on_cpu(self, fn: Callable[..., T], *args) -> Callable[[Sequence], asyncio.Future[T]]:
        """``fn(part, *args)`` in the CPU executor, as a stage function for the policy."""
        loop = asyncio.get_running_loop()
        return lambda part: loop.run_in_executor(self.cpu, fn, part, *args)

    async def prepare(self, events: Sequence[RawEvent]) -> Prepared:
        """Parse, keep each product's newest version, skip unchanged ones, embed images, categorise
        and build the documents; nothing is written yet."""
        m, p = self.metrics, self.policy
        categoriser = self.slot.current  # one model version for the whole batch
        version, taxonomy = categoriser.version, categoriser.taxonomy
        m.batch_size.observe(len(events))

        with m.stage("parse"):
            parsed = await p.run(Stage.PARSE, events, self._on_cpu(parse_events, self.limits, version))
        dead = [event.reject(Stage.PARSE, reason) for event, reason in parsed.failed]
        dead += [event.reject(result.stage, result.reason) for event, result in parsed.ok
                 if not isinstance(result, Parsed)]
        items, skipped = newest_per_product([r for _, r in parsed.ok if isinstance(r, Parsed)])
        unchanged = self.unchanged
        if unchanged is not None and items:
            prints = [(i.record.id, i.fingerprint) for i in items]
            with m.stage("dedup"):
                same = await p.call(Stage.DEDUP, lambda: unchanged.unchanged(prints))
            skipped += sum(same)
            items = [i for i, s in zip(items, same, strict=True) if not s]

        vectors: dict[str, np.ndarray] = {}
        if self.images is not None and items:
            with m.stage("embed"):
                embedded = await p.run(Stage.IMAGES, items, self._vectors)
            dead += [i.event.reject(Stage.IMAGES, reason) for i, reason in embedded.failed]
            items = [i for i, _ in embedded.ok]
            vectors = {i.record.id: v for i, v in embedded.ok if v is not None}

        with m.stage("model"):
            decided = await p.run(Stage.MODEL, items, self._on_cpu(_categorise, categoriser, vectors))
        dead += [i.event.reject(Stage.MODEL, reason) for i, reason in decided.failed]
        classified = [Classified(i.event, i.record, result, i.fingerprint) for i, result in decided.ok]

        with m.stage("documents"):
            built = await p.run(Stage.DOCUMENT, classified,
                                self._on_cpu(build_documents, taxonomy, version, self.rules, self.limits))
        dead += [c.event.reject(Stage.DOCUMENT, reason) for c, reason in built.failed]
        dead += [c.event.reject(doc.stage, doc.reason) for c, doc in built.ok if not isinstance(doc, Document)]
        kept = [(c, doc) for c, doc in built.ok if isinstance(doc, Document)]
        return Prepared(categoriser, [c for c, _ in kept], [doc for _, doc in kept], dead, vectors, skipped)

    async def _vectors(self, items: Sequence[Parsed]) -> list[np.ndarray | None]:
        found = await self.images.vectors([i.record for i in items]) if self.images is not None else {}
        return [found.get(i.record.id) for i in items]

    async def deliver(self, batch: Prepared) -> None:
        """Write a prepared batch to every sink; when this returns, its events may be acked."""
        m, p, unchanged = self.metrics, self.policy, self.unchanged
        version, taxonomy = batch.categoriser.version, batch.categoriser.taxonomy
        dead = list(batch.dead)
        by_id = {c.record.id: c for c in batch.classified}
        with m.stage("elasticsearch"):
            es = await p.write(Stage.ELASTICSEARCH, self.elastic, batch.docs)
        dead += [by_id[doc.id].event.reject(Stage.ELASTICSEARCH, reason) for doc, reason in es.failed]
        # a record Elasticsearch refused as stale is not news: it is not published anywhere
        fresh = [by_id[doc.id] for doc in es.ok]

        if self.image_sink is not None:
            rows = [ImageVector(c.record.id, batch.vectors[c.record.id], *level_categories(c, taxonomy), version)
                    for c in fresh if c.record.id in batch.vectors]
            with m.stage("milvus"):
                milvus = await p.write(Stage.MILVUS, self.image_sink, rows)
            dead += [by_id[row.id].event.reject(Stage.MILVUS, reason) for row, reason in milvus.failed]

        # one draw per fresh product, made once: a retried admit must not draw again
        sampler, gate = self.labelling_sampler, self.labelling
        wanted = sampler.draw(fresh) if sampler is not None and gate is not None and fresh else []
        admitted = await p.call(Stage.LABELLING, lambda: gate.admit(wanted, version)) if gate and wanted else []
        if sampler is not None:
            sampler.spend(len(admitted))

        outputs = ([(c, Message(self.topics.categorised, c.record.id.encode(), categorised_message(c, taxonomy, version)))
                    for c in fresh]
                   + [(a.item, Message(self.topics.label_requests, a.item.record.id.encode(),
                                       request_message(a, taxonomy, version))) for a in admitted])
        with m.stage("kafka"):
            refused = await send(p, self.kafka, self.topics.deadletter, dead, [msg for _, msg in outputs])
            owner = {id(msg): c for c, msg in outputs}
            late = [owner[id(msg)].event.reject(Stage.KAFKA, reason) for msg, reason in refused]
            if late:  # an output the broker refused for itself: its record becomes a dead letter too
                await send(p, self.kafka, self.topics.deadletter, late)
        dead += late

        if unchanged is not None:
            failed = {d.key for d in dead}
            done = [(c.record.id, c.fingerprint) for c in fresh if c.record.id.encode() not in failed]
            await p.call(Stage.DEDUP, lambda: unchanged.remember(done))

        m.skipped.inc(batch.skipped)
        for d in dead:
            m.deadletters.labels(str(d.stage)).inc()
        for a in admitted:
            m.label_requests.labels(a.reason.split(" ")[0]).inc()
        m.events_out.labels("elasticsearch").inc(len(fresh))


def _categorise(items: Sequence[Parsed], categoriser: Categoriser, vectors: dict[str, np.ndarray]) -> list:
    return categoriser.categorise_batch([i.record for i in items], vectors or None)
