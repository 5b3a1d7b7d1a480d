"""Fuzz on the real stack: 5,000 hostile events among 5,000 valid ones never stop the worker.

Every hostile event is dead-lettered (original bytes, a reason) or stored safely under its own
id; every valid product is in Elasticsearch exactly once in its newest version; nothing stale
is published; the same worker process runs throughout; the lag drains to 0.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest
from confluent_kafka import Producer
from elasticsearch import Elasticsearch, helpers

from runtime.deadletter import DeadLetter
from streams.lag import consumer_lag
from streams.topics import ensure_topics
from tests.helpers import drain
from tests.streams.hostile import expected_store, hostile_feed
from tests.streams.test_worker_ops import wait_until

pytestmark = pytest.mark.integration


def send(settings, events) -> None:
    # message.max.bytes bounds the uncompressed size here: the 3 MB event reaches the broker compressed
    producer = Producer({**settings.kafka_client_config(), "linger.ms": 20, "compression.type": "lz4",
                         "message.max.bytes": 8 << 20, "enable.idempotence": True})
    errors = []
    for e in events:
        while True:
            try:
                producer.produce(settings.topic_raw, key=e.key, value=e.value,
                                 on_delivery=lambda err, _m: err and errors.append(err))
                break
            except BufferError:
                producer.poll(0.5)
        producer.poll(0)
    assert producer.flush(60) == 0 and not errors, errors[:3]


def test_a_hostile_feed_never_stops_the_worker(isolated, workers) -> None:
    settings = isolated
    ensure_topics(settings)
    feed = hostile_feed(n_valid=5000, n_hostile=5000)
    assert sum(e.dead for e in feed) >= 5000 and sum(e.kind == "valid" for e in feed) >= 5000
    worker = workers(settings)
    send(settings, feed)
    wait_until(lambda: sum(r.lag for r in consumer_lag(settings, settings.consumer_group, [settings.topic_raw])) == 0,
               600, "the lag to drain", worker)
    assert worker.proc.poll() is None, "one worker process throughout: it never crashed"

    es = Elasticsearch(**settings.es_client_kwargs())
    es.indices.refresh(index=settings.es_index_products)
    docs = {hit["_id"]: hit["_source"] for hit in helpers.scan(es, index=settings.es_index_products,
                                                               _source=["title"])}
    expected = expected_store(feed)
    assert set(docs) == set(expected), "every stored product exactly once, under its own id, nothing else"
    stale = [pid for pid, v in expected.items() if pid.startswith("v") and not docs[pid]["title"].endswith(f" {v}")]
    assert not stale, f"{len(stale)} products hold an older version, e.g. {stale[:3]}"

    dead = [DeadLetter.from_message(m.key(), m.value(), m.headers())
            for m in drain(settings, settings.topic_deadletter, idle_s=10)]
    assert Counter(d.value for d in dead) == Counter(e.value for e in feed if e.dead), \
        "every hostile event dead-lettered once, with its original bytes"
    assert all(d.reason and d.stage in {"parse", "validate", "document"} for d in dead)

    seen: dict[str, str] = {}
    for m in drain(settings, settings.topic_categorised, idle_s=10):
        msg = json.loads(m.value())
        # per product (one key, one partition), what is published never goes back in time
        assert (msg["updated_at"] or "") >= seen.get(msg["id"], ""), f"a stale version of {msg['id']} was published"
        seen[msg["id"]] = msg["updated_at"] or ""
    assert set(seen) == set(expected)
