"""In-memory sinks behind the same protocol as the real ones, for unit tests of the stream core.

They keep only what the tests look at: the stored documents (with Elasticsearch's external_gte
rule), the produced messages, and scripted failures.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from prodcat.categoriser import Categoriser
from prodcat.limits import InputLimits
from prodcat.rules import RuleCategoriser, RuleSet
from prodcat.taxonomy import Taxonomy
from runtime.deadletter import DeadLetter, RawEvent
from runtime.policy import ErrorPolicy, Health
from runtime.sinks.base import Message, WriteResult
from runtime.sinks.elastic import Document
from streams.processor import BatchProcessor, CategoriserSlot, Topics
from streams.worker_metrics import WorkerMetrics

TAXONOMY = Taxonomy.from_paths([("Clothing", "Shorts"), ("Clothing", "Shirts"), ("Footwear", "Sneakers")])
RULES = """
- id: shorts
  category: Clothing > Shorts
  all: [{field: title, word: shorts}]
- id: sneakers
  category: Footwear > Sneakers
  any: [{field: title, word: sneaker}, {field: category, word: sneakers}]
"""
TOPICS = Topics("out", "dead", "requests")


def rules() -> RuleCategoriser:
    return RuleCategoriser(RuleSet.from_yaml(RULES, TAXONOMY))


class FakeElastic:
    """Documents by id with their external version; refuses older versions (stale) like external_gte."""

    def __init__(self, refuse: Callable[[Document], str | None] = lambda _doc: None) -> None:
        self.docs: dict[str, Document] = {}
        self.refuse = refuse
        self.calls = 0

    async def write(self, items: Sequence[Document]) -> WriteResult:
        self.calls += 1
        failed, stale = {}, set()
        for i, doc in enumerate(items):
            reason = self.refuse(doc)
            if reason is not None:
                failed[i] = reason
            elif doc.id in self.docs and doc.version < self.docs[doc.id].version:
                stale.add(i)
            else:
                self.docs[doc.id] = doc
        return WriteResult(failed=failed, stale=frozenset(stale))


class FakeKafka:
    """Every produced message, by topic; ``refuse`` picks messages the 'broker' will not take."""

    def __init__(self, refuse: Callable[[Message], str | None] = lambda _msg: None) -> None:
        self.messages: list[Message] = []
        self.refuse = refuse

    async def write(self, items: Sequence[Message]) -> WriteResult:
        failed = {}
        for i, msg in enumerate(items):
            reason = self.refuse(msg)
            if reason is None:
                self.messages.append(msg)
            else:
                failed[i] = reason
        return WriteResult(failed=failed)

    def on(self, topic: str) -> list[Message]:
        return [m for m in self.messages if m.topic == topic]

    def dead_letters(self) -> list[DeadLetter]:
        return [DeadLetter.from_message(m.key, m.value, m.headers) for m in self.on(TOPICS.deadletter)]


def processor(categoriser: Categoriser | None = None, *, elastic: FakeElastic | None = None,
              kafka: FakeKafka | None = None, limits: InputLimits = InputLimits(),
              health: Health | None = None) -> BatchProcessor:
    """A BatchProcessor over fakes (no Redis: no skip-unchanged, no labelling gate, no images)."""
    async def no_sleep(_s: float) -> None:
        return None

    return BatchProcessor(slot=CategoriserSlot(categoriser or rules()), elastic=elastic or FakeElastic(),
                          kafka=kafka or FakeKafka(), topics=TOPICS,
                          cpu=ThreadPoolExecutor(max_workers=1), metrics=WorkerMetrics(), limits=limits,
                          policy=ErrorPolicy(health, sleep=no_sleep))


def event(value: bytes, offset: int = 0, key: bytes | None = b"k") -> RawEvent:
    return RawEvent(value, key=key, topic="products.raw", partition=0, offset=offset)
