"""Consumer lag from the broker itself: end offset minus the group's committed offset."""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import OFFSET_INVALID, Consumer, TopicPartition

from prodcat.kafka import connect_admin
from prodcat.settings import Settings


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    end_offset: int
    committed: int | None  # None: the group has committed nothing on this partition yet
    lag: int


def consumer_lag(settings: Settings, group: str, topics: list[str], timeout: float = 10.0) -> list[PartitionLag]:
    """Lag of ``group`` on every partition of ``topics``, as the broker reports it."""
    connect_admin(settings, timeout)  # a clear error instead of a hang when Kafka is down
    consumer = Consumer({**settings.kafka_client_config(), "group.id": group, "enable.auto.commit": False,
                         "log_level": 0})
    try:
        tps = []
        for topic in topics:
            meta = consumer.list_topics(topic, timeout=timeout).topics[topic]
            tps += [TopicPartition(topic, p) for p in sorted(meta.partitions)]
        rows = []
        for tp in consumer.committed(tps, timeout=timeout):
            low, high = consumer.get_watermark_offsets(tp, timeout=timeout, cached=False)
            committed = None if tp.offset == OFFSET_INVALID else tp.offset
            # nothing committed yet: everything still retained is waiting
            lag = high - (committed if committed is not None else low)
            rows.append(PartitionLag(tp.topic, tp.partition, high, committed, max(lag, 0)))
        return rows
    finally:
        consumer.close()
