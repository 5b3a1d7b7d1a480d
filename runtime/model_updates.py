"""models.updates: the compacted topic that announces the promoted model to every worker."""

from __future__ import annotations

import json
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from pydantic import BaseModel

from prodcat.errors import StackError
from prodcat.settings import Settings

KEY = b"current"


class Announcement(BaseModel):
    """A promoted model: its version and where its artifact lives."""

    version: str
    location: str
    kind: str = "model"  # "model" (an artifact directory) or "rules" (a rules YAML + taxonomy JSON)


def announce(settings: Settings, announcement: Announcement) -> None:
    """Publish the promotion; compaction keeps only the latest under the key "current"."""
    producer = Producer({**settings.kafka_client_config(), "acks": "all"})
    errors = []
    producer.produce(settings.topic_model_updates, key=KEY, value=announcement.model_dump_json().encode(),
                     on_delivery=lambda err, _msg: errors.append(err) if err else None)
    if producer.flush(30) > 0 or errors:
        raise StackError(f"could not announce model {announcement.version} on {settings.topic_model_updates}: "
                         f"{errors or 'timeout'}")


class AnnouncementReader:
    """Reads the latest announcement without a consumer group, so EVERY worker sees it (blocking)."""

    def __init__(self, settings: Settings) -> None:
        self.topic = settings.topic_model_updates
        self.consumer = Consumer({**settings.kafka_client_config(), "group.id": "unused-no-commits",
                                  "enable.auto.commit": False, "log_level": 0})
        self._seen_end = -1

    def latest(self, timeout: float = 5.0) -> Announcement | None:
        """The newest announcement if one arrived since the last call, else None."""
        tp = TopicPartition(self.topic, 0)
        for attempt in range(10):
            try:
                _low, high = self.consumer.get_watermark_offsets(tp, timeout=timeout, cached=False)
                break
            except KafkaException:
                # a topic created a moment ago may have no partition leader yet: that passes
                if attempt == 9:
                    raise
                time.sleep(0.5)
        if high <= 0 or high == self._seen_end:
            return None
        self.consumer.assign([TopicPartition(self.topic, 0, high - 1)])
        msg = self.consumer.poll(timeout)
        if msg is None or msg.error():
            return None
        self._seen_end = high
        value = msg.value()
        return None if value is None else Announcement.model_validate(json.loads(value))

    def close(self) -> None:
        self.consumer.close()
