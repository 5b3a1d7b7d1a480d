"""The stream core without Kafka: BatchProcessor over in-memory sinks, one error policy for every stage."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone

import orjson
import pytest
from elastic_transport import ConnectionError as ESConnectionError

from prodcat.categoriser import Categoriser
from prodcat.errors import Stage
from prodcat.limits import InputLimits
from runtime.deadletter import DeadLetterRefused
from runtime.policy import Health
from tests.streams.fakes import (
    TAXONOMY,
    TOPICS,
    FakeElastic,
    FakeKafka,
    event,
    processor,
    rules,
)


def run(proc, events) -> None:
    async def go() -> None:
        await proc.deliver(await proc.prepare(events))
    asyncio.run(go())


def product(pid: str, title: str = "Denim Shorts", **fields) -> bytes:
    return json.dumps({"id": pid, "title": title, **fields}).encode()


def test_good_and_bad_events_are_separated_and_dead_letters_keep_the_original_bytes() -> None:
    kafka = FakeKafka()
    proc = processor(kafka=kafka, limits=InputLimits(field_chars=200))
    run(proc, [event(product("p1", "<b>Alisha</b> Solid Women&#39;s Cycling Shorts"), 0), event(b"{broken", 1),
               event(b'{"title": "no id here"}', 2), event(product("p4", "x" * 500), 3),
               event(b'{"id": "p5", "price": "12"}', 4)])
    assert [json.loads(m.value)["id"] for m in kafka.on(TOPICS.categorised)] == ["p1"]
    by_offset = {d.offset: d for d in kafka.dead_letters()}
    assert set(by_offset) == {1, 2, 3, 4}
    assert by_offset[1].stage == Stage.PARSE and by_offset[1].value == b"{broken"
    assert by_offset[2].stage == Stage.VALIDATE and "id" in by_offset[2].reason
    assert "title" in by_offset[3].reason and by_offset[3].value == product("p4", "x" * 500)
    assert all(d.source_topic == "products.raw" and d.key == b"k" and d.partition == 0 for d in by_offset.values())


def test_rule_categories_include_ancestors() -> None:
    elastic = FakeElastic()
    run(processor(elastic=elastic), [event(product("p1", "Running Shorts", category="Sport")),
                                     event(product("p2", "Canvas Shoe", category="Footwear > Sneakers"))])
    shorts, clothing = TAXONOMY.find(["Clothing", "Shorts"]), TAXONOMY.find(["Clothing"])
    assert set(elastic.docs["p1"].source["categories"]) == {shorts, clothing}
    assert set(elastic.docs["p2"].source["categories"]) == {TAXONOMY.find(["Footwear", "Sneakers"]),
                                                            TAXONOMY.find(["Footwear"])}


class Exploding(Categoriser):
    """Fails on batches that hold a product it cannot categorise, as a buggy model might."""

    version = "boom-1"
    taxonomy = TAXONOMY

    def __init__(self, inner: Categoriser, bad: set[str] | None = None) -> None:
        self.inner, self.bad, self.calls = inner, bad, 0

    def categorise_batch(self, records, image_vectors=None):
        self.calls += 1
        if self.bad is None or any(r.id in self.bad for r in records):
            raise ValueError("cannot categorise this one")
        return self.inner.categorise_batch(records, image_vectors)


def test_a_model_failure_costs_only_the_records_it_belongs_to() -> None:
    elastic, kafka = FakeElastic(), FakeKafka()
    run(processor(Exploding(rules(), bad={"bad"}), elastic=elastic, kafka=kafka),
        [event(product(f"ok{i}"), i) for i in range(7)] + [event(product("bad"), 7)])
    assert sorted(elastic.docs) == [f"ok{i}" for i in range(7)]
    [dead] = kafka.dead_letters()
    assert (dead.offset, dead.stage) == (7, Stage.MODEL) and "cannot categorise" in dead.reason


def test_a_model_that_fails_on_everything_writes_nothing_as_no_category() -> None:
    elastic, kafka = FakeElastic(), FakeKafka()
    run(processor(Exploding(rules()), elastic=elastic, kafka=kafka), [event(product(f"p{i}"), i) for i in range(5)])
    assert elastic.docs == {} and kafka.on(TOPICS.categorised) == []
    assert sorted(d.offset for d in kafka.dead_letters()) == [0, 1, 2, 3, 4]
    assert {d.stage for d in kafka.dead_letters()} == {Stage.MODEL}


def test_newest_version_wins_within_a_batch_and_ties_go_to_the_later_offset() -> None:
    elastic, kafka = FakeElastic(), FakeKafka()
    run(processor(elastic=elastic, kafka=kafka), [
        event(product("a", "NEW shorts", updated_at="2026-06-01T00:00:00Z"), 0),
        event(product("a", "OLD shorts", updated_at="2026-01-01T00:00:00Z"), 1),
        event(product("b", "first shorts", updated_at="2026-01-01T00:00:00Z"), 2),
        event(product("b", "second shorts", updated_at="2026-01-01T00:00:00Z"), 3),
    ])
    assert elastic.docs["a"].source["title"] == "NEW shorts"
    assert elastic.docs["b"].source["title"] == "second shorts"
    assert sorted(json.loads(m.value)["id"] for m in kafka.on(TOPICS.categorised)) == ["a", "b"]


def test_a_record_refused_as_stale_is_not_published() -> None:
    elastic, kafka = FakeElastic(), FakeKafka()
    proc = processor(elastic=elastic, kafka=kafka)
    run(proc, [event(product("a", "NEW shorts", updated_at="2026-06-01T00:00:00Z"))])
    run(proc, [event(product("a", "OLD shorts", updated_at="2026-01-01T00:00:00Z"))])
    assert elastic.docs["a"].source["title"] == "NEW shorts"
    assert [json.loads(m.value)["updated_at"] for m in kafka.on(TOPICS.categorised)] == ["2026-06-01T00:00:00+00:00"]


def test_a_document_over_the_size_limit_is_a_dead_letter() -> None:
    elastic, kafka = FakeElastic(), FakeKafka()
    big = {f"extra{i}": "y" * 4000 for i in range(5)}
    run(processor(elastic=elastic, kafka=kafka, limits=InputLimits(document_bytes=10_000)),
        [event(product("big", **big), 0), event(product("small"), 1)])
    assert list(elastic.docs) == ["small"]
    [dead] = kafka.dead_letters()
    assert dead.stage == Stage.DOCUMENT and "PRODCAT_MAX_DOCUMENT_BYTES" in dead.reason


def test_a_document_elasticsearch_refuses_is_a_dead_letter_and_the_rest_is_published() -> None:
    elastic = FakeElastic(refuse=lambda doc: "mapper_parsing_exception" if doc.id == "odd" else None)
    kafka = FakeKafka()
    run(processor(elastic=elastic, kafka=kafka), [event(product("odd"), 0), event(product("fine"), 1)])
    assert list(elastic.docs) == ["fine"]
    [dead] = kafka.dead_letters()
    assert dead.stage == Stage.ELASTICSEARCH and "mapper_parsing_exception" in dead.reason
    assert [json.loads(m.value)["id"] for m in kafka.on(TOPICS.categorised)] == ["fine"]


class PoisonedBulk(FakeElastic):
    """Fails the whole request when it holds the poison document (Elasticsearch's 400 for a bad id)."""

    async def write(self, items):
        if any(doc.id == "poison" for doc in items):
            raise ValueError("action_request_validation_exception")
        return await super().write(items)


def test_a_request_that_fails_as_a_whole_is_halved_until_only_the_culprit_is_left() -> None:
    elastic, kafka = PoisonedBulk(), FakeKafka()
    events = [event(product(f"p{i}"), i) for i in range(40)]
    events[23] = event(product("poison"), 23)
    run(processor(elastic=elastic, kafka=kafka), events)
    assert len(elastic.docs) == 39 and "poison" not in elastic.docs
    assert [(d.offset, d.stage) for d in kafka.dead_letters()] == [(23, Stage.ELASTICSEARCH)]
    assert elastic.calls <= 2 * 6 + 1  # halving: about two calls per level of a 40-document batch


class Flaky(FakeElastic):
    """Unreachable for the first ``outages`` calls; ``seen`` records /health's view during the outage."""

    def __init__(self, outages: int, health: Health) -> None:
        super().__init__()
        self.outages, self.health, self.seen = outages, health, []

    async def write(self, items):
        self.seen.append(dict(self.health.waiting))
        if self.outages:
            self.outages -= 1
            raise ESConnectionError("connection refused")
        return await super().write(items)


def test_an_outage_is_retried_with_health_not_ready_and_nothing_is_dead_lettered() -> None:
    health = Health()
    elastic, kafka = Flaky(outages=3, health=health), FakeKafka()
    run(processor(elastic=elastic, kafka=kafka, health=health), [event(product(f"p{i}"), i) for i in range(5)])
    assert len(elastic.docs) == 5 and kafka.dead_letters() == []
    assert elastic.seen[0] == {} and "ConnectionError" in elastic.seen[1]["elasticsearch"]
    assert health.ready  # recovered


def test_an_output_the_broker_refuses_dead_letters_its_record() -> None:
    kafka = FakeKafka(refuse=lambda m: "MSG_SIZE_TOO_LARGE" if m.topic == TOPICS.categorised and m.key == b"x"
                      else None)
    run(processor(kafka=kafka), [event(product("x"), 0, key=b"x"), event(product("y"), 1, key=b"y")])
    assert [json.loads(m.value)["id"] for m in kafka.on(TOPICS.categorised)] == ["y"]
    [dead] = kafka.dead_letters()
    assert (dead.stage, dead.key, dead.value) == (Stage.KAFKA, b"x", product("x"))


def test_a_refused_dead_letter_stops_the_batch() -> None:
    kafka = FakeKafka(refuse=lambda m: "TOPIC_AUTHORIZATION_FAILED" if m.topic == TOPICS.deadletter else None)
    with pytest.raises(DeadLetterRefused, match="TOPIC_AUTHORIZATION_FAILED"):
        run(processor(kafka=kafka), [event(b"{broken")])


def test_document_and_message_carry_names_levels_and_version() -> None:
    elastic = FakeElastic()
    run(processor(elastic=elastic), [event(product("p1", "Shorts", updated_at="2024-05-01T10:00:00Z"))])
    doc = elastic.docs["p1"]
    assert doc.source["category_names"] == ["Clothing", "Clothing > Shorts"]
    assert doc.source["level1"] == [TAXONOMY.find(["Clothing"])]
    assert doc.source["level2"] == [TAXONOMY.find(["Clothing", "Shorts"])]
    assert doc.source["model_version"].startswith("rules-") and doc.source["id"] == "p1"
    assert doc.version == int(datetime(2024, 5, 1, 10, tzinfo=timezone.utc).timestamp() * 1000)
    assert len(orjson.dumps(doc.source)) < InputLimits().document_bytes
