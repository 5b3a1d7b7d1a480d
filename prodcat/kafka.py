"""Reaching the Kafka cluster with the configured credentials, or saying clearly why not."""

from __future__ import annotations

from confluent_kafka.admin import AdminClient

from prodcat.errors import StackError
from prodcat.settings import Settings


def connect_admin(settings: Settings, timeout: float = 10.0) -> AdminClient:
    """An admin client on a cluster that answered; StackError naming the setting otherwise."""
    # log_level 0: an unreachable broker is reported once, below, not as a flood of librdkafka lines
    admin = AdminClient({**settings.kafka_client_config(), "log_level": 0})
    try:
        admin.list_topics(timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - librdkafka raises KafkaException with its own text
        raise StackError(f"Kafka at {settings.kafka_brokers} is unreachable ({exc}); "
                         "start it with `prodcat stack up` or set PRODCAT_KAFKA_BROKERS") from None
    return admin
