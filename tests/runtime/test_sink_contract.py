"""The sink contract, run over every sink in the registry: the real ones and the stream tests' fakes.

What the error policy and the batch processor rely on, whichever sink they write to: a write
returns only once every item is stored (or refused); an empty write stores nothing and fails
nothing; a record the service refuses on its own merits comes back in ``failed`` by its position
with a reason, and the rest of the batch is stored; a replay fails nothing. Document sinks also
keep the newest version: an older one is reported ``stale``, not failed, and changes nothing.

ElasticSink and KafkaSink need the real stack (integration); the in-memory fakes of
tests/streams/fakes.py pass the same checks as unit tests, so the processor's tests over them
mean something. A new sink is covered by adding a case to ``SINKS``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from elasticsearch import AsyncElasticsearch

from runtime.sinks.base import Message, Sink, WriteResult
from runtime.sinks.elastic import Document, ElasticSink
from runtime.sinks.kafka import KafkaSink
from tests.helpers import drain
from tests.streams.fakes import FakeElastic, FakeKafka

MAX_BYTES = 2048  # the Kafka cases' topic limit: a larger (incompressible) message is refused


@dataclass(frozen=True)
class SinkCase:
    """How to open a sink, make items for it, make one it refuses, and read back what it stored.

    ``open(request)`` yields ``(sink, stored)`` where ``await stored()`` is the set of item keys
    the service holds (a document's id and version, a message's key and value).
    """

    open: Callable[[pytest.FixtureRequest], AbstractAsyncContextManager[tuple[Sink[Any], Callable[[], Any]]]]
    item: Callable[[int, int], Any]  # (number, version) -> item
    refused: Callable[[], Any]
    key: Callable[[Any], Any]
    versioned: bool


# --- documents ------------------------------------------------------------------------------


def document(i: int, version: int = 1) -> Document:
    return Document(f"p{i}", version, {"id": f"p{i}", "title": f"product {i} v{version}"})


def bad_document() -> Document:
    return Document("bad", 1, {"id": "bad", "updated_at": "not a date"})  # the mapping says date


def refuses_bad_dates(doc: Document) -> str | None:
    if doc.source.get("updated_at") == "not a date":
        return "mapper_parsing_exception: failed to parse field [updated_at] of type [date]"
    return None


@asynccontextmanager
async def fake_elastic(_request: pytest.FixtureRequest) -> AsyncIterator[tuple[Sink[Document], Callable[[], Any]]]:
    sink = FakeElastic(refuse=refuses_bad_dates)

    async def stored() -> set[Any]:
        return {(doc.id, doc.version) for doc in sink.docs.values()}

    yield sink, stored


@asynccontextmanager
async def real_elastic(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Sink[Document], Callable[[], Any]]]:
    settings = request.getfixturevalue("isolated")
    client = AsyncElasticsearch(**settings.es_client_kwargs())
    sink = ElasticSink(client, settings.es_index_products)
    await sink.ensure_index()

    async def stored() -> set[Any]:
        await client.indices.refresh(index=sink.index)
        found = await client.search(index=sink.index, size=1000, version=True, query={"match_all": {}})
        return {(hit["_id"], hit["_version"]) for hit in found["hits"]["hits"]}

    try:
        yield sink, stored
    finally:
        await client.indices.delete(index=sink.index, ignore_unavailable=True)
        await client.close()


# --- messages -------------------------------------------------------------------------------


def message(i: int, version: int = 1) -> Message:
    return Message("contract.out", f"p{i}".encode(), f"product {i} v{version}".encode(), [("n", str(i).encode())])


def bad_message() -> Message:
    return Message("contract.out", b"bad", os.urandom(4 * MAX_BYTES))  # random bytes do not compress


def refuses_large(msg: Message) -> str | None:
    return "Broker: Message size too large" if len(msg.value) > MAX_BYTES else None


@asynccontextmanager
async def fake_kafka(_request: pytest.FixtureRequest) -> AsyncIterator[tuple[Sink[Message], Callable[[], Any]]]:
    sink = FakeKafka(refuse=refuses_large)

    async def stored() -> set[Any]:
        return {(m.key, m.value) for m in sink.messages}

    yield sink, stored


class TopicRewrite:
    """KafkaSink onto this test's own topic: the cases' messages name a placeholder topic."""

    def __init__(self, sink: KafkaSink, topic: str) -> None:
        self.sink, self.topic = sink, topic

    async def write(self, items: list[Message]) -> WriteResult:
        return await self.sink.write([m._replace(topic=self.topic) for m in items])


@asynccontextmanager
async def real_kafka(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Sink[Message], Callable[[], Any]]]:
    settings = request.getfixturevalue("isolated")
    topic = f"{settings.topic_categorised}.contract"
    admin = AdminClient(settings.kafka_client_config())
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1,
                                  config={"max.message.bytes": str(MAX_BYTES)})])[topic].result(30)
    sink = KafkaSink(settings.kafka_client_config(), linger_ms=0)

    async def stored() -> set[Any]:
        messages = await asyncio.to_thread(drain, settings, topic, 3.0)
        return {(m.key(), m.value()) for m in messages}

    try:
        yield TopicRewrite(sink, topic), stored
    finally:
        sink.close()
        admin.delete_topics([topic])


def by_id_and_version(doc: Document) -> tuple[str, int]:
    return doc.id, doc.version


def by_key_and_value(msg: Message) -> tuple[bytes | None, bytes]:
    return msg.key, msg.value


FAKE_DOCS = SinkCase(fake_elastic, document, bad_document, by_id_and_version, versioned=True)
FAKE_MESSAGES = SinkCase(fake_kafka, message, bad_message, by_key_and_value, versioned=False)
SINKS = {
    "FakeElastic": pytest.param(FAKE_DOCS, id="FakeElastic"),
    "FakeKafka": pytest.param(FAKE_MESSAGES, id="FakeKafka"),
    "ElasticSink": pytest.param(SinkCase(real_elastic, document, bad_document, by_id_and_version, versioned=True),
                                id="ElasticSink", marks=pytest.mark.integration),
    "KafkaSink": pytest.param(SinkCase(real_kafka, message, bad_message, by_key_and_value, versioned=False),
                              id="KafkaSink", marks=pytest.mark.integration),
}


@pytest.fixture(params=list(SINKS.values()))
def case(request) -> SinkCase:
    return request.param


def run(check: Callable[..., Any], case: SinkCase, request: pytest.FixtureRequest) -> None:
    async def main() -> None:
        async with case.open(request) as (sink, stored):
            await check(case, sink, stored)

    asyncio.run(main())


def test_registry_covers_the_runtime_sinks_and_the_fakes() -> None:
    assert set(SINKS) == {cls.__name__ for cls in (ElasticSink, KafkaSink, FakeElastic, FakeKafka)}


def test_an_empty_write_stores_and_fails_nothing(case: SinkCase, request) -> None:
    async def check(case: SinkCase, sink: Sink[Any], stored) -> None:
        result = await sink.write([])
        assert result.failed == {} and result.stale == frozenset()
        assert await stored() == set()

    run(check, case, request)


def test_every_item_is_stored_when_write_returns(case: SinkCase, request) -> None:
    async def check(case: SinkCase, sink: Sink[Any], stored) -> None:
        items = [case.item(i, 1) for i in range(20)]
        result = await sink.write(items)
        assert result.failed == {} and result.stale == frozenset()
        assert await stored() == {case.key(item) for item in items}

    run(check, case, request)


def test_a_refused_record_is_reported_by_position_and_the_rest_stored(case: SinkCase, request) -> None:
    async def check(case: SinkCase, sink: Sink[Any], stored) -> None:
        items = [case.item(0, 1), case.item(1, 1), case.refused(), case.item(3, 1)]
        result = await sink.write(items)
        assert list(result.failed) == [2] and result.failed[2].strip()
        assert result.stale == frozenset()
        assert await stored() == {case.key(items[i]) for i in (0, 1, 3)}

    run(check, case, request)


def test_a_replay_fails_nothing(case: SinkCase, request) -> None:
    async def check(case: SinkCase, sink: Sink[Any], stored) -> None:
        items = [case.item(i, 1) for i in range(5)]
        await sink.write(items)
        again = await sink.write(items)  # at-least-once delivery: the same batch after a crash
        assert again.failed == {}
        assert await stored() == {case.key(item) for item in items}

    run(check, case, request)


@pytest.mark.parametrize("case", [p for p in SINKS.values() if p.values[0].versioned])
def test_a_document_sink_keeps_the_newest_version(case: SinkCase, request) -> None:
    """Messages have no version (a topic keeps every message): document sinks only."""

    async def check(case: SinkCase, sink: Sink[Any], stored) -> None:
        await sink.write([case.item(0, 5), case.item(1, 5)])
        result = await sink.write([case.item(0, 3), case.item(1, 5), case.item(2, 1)])
        assert result.failed == {} and result.stale == frozenset({0})
        assert await stored() == {case.key(case.item(0, 5)), case.key(case.item(1, 5)), case.key(case.item(2, 1))}

    run(check, case, request)
