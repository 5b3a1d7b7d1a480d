"""Create prodcat's Kafka topics with the configured partitions (idempotent)."""

from __future__ import annotations

from confluent_kafka.admin import NewTopic

from prodcat.errors import StackError
from prodcat.kafka import connect_admin
from prodcat.settings import Settings

DEADLETTER_MAX_BYTES = 8 << 20


def topic_specs(settings: Settings) -> list[NewTopic]:
    """Every topic of the architecture; models.updates is compacted (latest promoted model wins)."""
    partitions, replication = settings.topic_partitions, settings.topic_replication
    names = [settings.topic_raw, settings.topic_categorised, settings.topic_label_requests, settings.topic_labels]
    specs = [NewTopic(name, num_partitions=partitions, replication_factor=replication) for name in names]
    # a dead letter is the original event plus headers: room for any event the broker once took
    specs.append(NewTopic(settings.topic_deadletter, num_partitions=partitions, replication_factor=replication,
                          config={"max.message.bytes": str(DEADLETTER_MAX_BYTES)}))
    specs.append(NewTopic(settings.topic_model_updates, num_partitions=1,
                          replication_factor=settings.topic_replication,
                          config={"cleanup.policy": "compact"}))
    return specs


def ensure_topics(settings: Settings, timeout: float = 30.0) -> list[str]:
    """Create the missing topics; returns the names created now."""
    admin = connect_admin(settings, timeout)
    existing = set(admin.list_topics(timeout=timeout).topics)
    missing = [spec for spec in topic_specs(settings) if spec.topic not in existing]
    if not missing:
        return []
    created = []
    for name, future in admin.create_topics(missing, operation_timeout=timeout).items():
        try:
            future.result()
            created.append(name)
        except Exception as exc:  # noqa: BLE001
            if "TOPIC_ALREADY_EXISTS" not in str(exc):  # a concurrent worker won the race
                raise StackError(f"could not create topic {name}: {exc}") from exc
    return created
