"""KafkaSink on the real broker: a batch is on the broker, complete and in order, when write returns."""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from runtime.sinks.base import Message
from runtime.sinks.kafka import KafkaSink
from streams.topics import ensure_topics
from tests.helpers import drain

pytestmark = pytest.mark.integration


def end_offsets(settings, topic: str) -> int:
    """Messages the broker holds on ``topic`` (a fresh topic: the sum of its partitions' end offsets)."""
    consumer = Consumer({**settings.kafka_client_config(), "group.id": f"offsets-{uuid.uuid4().hex}"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions)
    finally:
        consumer.close()


def test_write_returns_once_the_broker_has_every_message(isolated) -> None:
    ensure_topics(isolated)
    sink = KafkaSink(isolated.kafka_client_config())
    batch = [Message(isolated.topic_categorised if i % 3 else isolated.topic_deadletter,
                     f"p{i % 50}".encode(), f"{i}:{uuid.uuid4().hex}".encode()) for i in range(3000)]
    try:
        assert asyncio.run(sink.write(batch)).failed == {}
        # at once, without flushing the producer: the broker's end offsets already count every message
        assert end_offsets(isolated, isolated.topic_categorised) == 2000
        assert end_offsets(isolated, isolated.topic_deadletter) == 1000
        asyncio.run(sink.write([]))  # nothing to send: returns at once
        for topic in (isolated.topic_categorised, isolated.topic_deadletter):
            got = [(m.key(), m.value()) for m in drain(isolated, topic, idle_s=10)]
            wanted = [(k, v) for t, k, v, _ in batch if t == topic]
            assert sorted(got) == sorted(wanted)
            for key in {k for k, _ in wanted}:  # one key, one partition: the batch's order
                assert [v for k, v in got if k == key] == [v for k, v in wanted if k == key]
    finally:
        sink.close()
    assert not sink._poller.is_alive()


def test_a_message_the_broker_refuses_is_reported_by_position_and_the_rest_delivered(isolated) -> None:
    topic = f"{isolated.topic_categorised}.small"
    admin = AdminClient(isolated.kafka_client_config())
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1,
                                  config={"max.message.bytes": "2048"})])[topic].result(30)
    sink = KafkaSink(isolated.kafka_client_config(), linger_ms=0)
    # random bytes do not compress: 8 KB stays above the topic's 2 KB limit
    batch = [Message(topic, b"a", b"small"), Message(topic, b"b", os.urandom(8192), [("h", b"1")]),
             Message(topic, b"c", b"small too")]
    try:
        result = asyncio.run(sink.write(batch))
        assert list(result.failed) == [1] and "too large" in result.failed[1].lower()
        assert sorted(m.value() for m in drain(isolated, topic, idle_s=5)) == [b"small", b"small too"]
    finally:
        sink.close()
