"""Human labels from labelling.labels into the label store; a label that cannot be stored is a dead letter."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from elasticsearch import AsyncElasticsearch

from prodcat.errors import InvalidRecord, Stage
from prodcat.settings import Settings
from prodcat.taxonomy import Taxonomy
from retrain.label_store import LabelStore, RequestLookup, parse_label
from runtime.deadletter import DeadLetter, RawEvent, send
from runtime.policy import ErrorPolicy
from runtime.sinks.base import Message, Sink


class LabelIntake:
    """Parses label messages, stores the labels of known products, dead-letters the rest with a reason.

    The worker consumes labelling.labels with it; the CLI wires it in (``for_worker``), so the
    worker's package does not import this one.
    """

    def __init__(self, store: LabelStore, kafka: Sink[Message], policy: ErrorPolicy, deadletter_topic: str) -> None:
        self.store, self.kafka, self.policy, self.deadletter_topic = store, kafka, policy, deadletter_topic

    @classmethod
    def for_worker(cls, settings: Settings) -> Callable[..., LabelIntake]:
        """What ``streams.app.create_app(label_intake=...)`` takes: builds the intake on the worker's clients."""
        def build(es: AsyncElasticsearch, kafka: Sink[Message], policy: ErrorPolicy, requests: RequestLookup) -> LabelIntake:
            store = LabelStore(es, index=settings.es_index_labels, products_index=settings.es_index_products,
                               requests=requests)
            return cls(store, kafka, policy, settings.topic_deadletter)
        return build

    async def ensure_index(self) -> None:
        await self.store.ensure_index()

    async def write(self, events: Sequence[RawEvent], taxonomy: Taxonomy) -> list[DeadLetter]:
        """Store a batch of label events; returns the dead letters, already on the dead-letter topic."""
        good, dead = [], []
        for event in events:
            try:
                good.append((event, parse_label(event.value, taxonomy, key=event.key)))
            except InvalidRecord as exc:
                dead.append(event.reject(exc.stage, exc.reason))
        result = await self.store.write([label for _, label in good])
        unknown = set(result.unknown_products)
        dead += [event.reject(Stage.LABELS, f"unknown product {label.product_id!r:.80}")
                 for event, label in good if label.product_id in unknown]
        dead += [event.reject(Stage.ELASTICSEARCH, result.failed[label.doc_id])
                 for event, label in good if label.doc_id in result.failed]
        await send(self.policy, self.kafka, self.deadletter_topic, dead)
        return dead
