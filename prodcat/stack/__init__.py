"""The local stack of real services (Kafka, Elasticsearch, Redis) run as processes."""

from prodcat.stack.manager import ServiceStatus, Stack

__all__ = ["Stack", "ServiceStatus"]
