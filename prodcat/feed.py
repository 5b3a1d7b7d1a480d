"""Replay a catalogue into products.raw as affiliate-style events (what a feed would publish)."""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Callable, Iterable
from pathlib import Path

from confluent_kafka import Producer

from prodcat.catalogue import add_noise, read_catalogue
from prodcat.errors import StackError
from prodcat.kafka import connect_admin
from prodcat.mapping import ColumnMapping
from prodcat.record import canonical_field
from prodcat.settings import Settings


def event_key(raw: dict) -> bytes | None:
    """The Kafka key: the product id, so one product always lands on one partition."""
    for name, value in raw.items():
        if canonical_field(name) == "id" and value not in (None, ""):
            return str(value).strip().encode()
    return None


def publish(settings: Settings, events: Iterable[tuple[bytes | None, bytes]],
            on_sent: Callable[[int], None] = lambda _n: None) -> int:
    """Send (key, value) pairs to products.raw and wait until the broker has every one."""
    errors: list[str] = []

    def delivered(err, _msg) -> None:
        if err is not None:
            errors.append(str(err))

    events = iter(events)
    first = next(events, None)  # reading the catalogue first: a bad file is reported before Kafka is
    if first is None:
        return 0
    connect_admin(settings)
    # log_level 0: failures reach the caller through the delivery reports; librdkafka's own lines are
    # transient noise, e.g. "GETPID ... Coordinator load in progress: retrying" on a freshly started broker
    producer = Producer({**settings.kafka_client_config(), "linger.ms": 20, "acks": "all",
                         "enable.idempotence": True, "compression.type": "lz4", "log_level": 0})
    sent = 0
    for key, value in itertools.chain([first], events):
        while True:
            try:
                producer.produce(settings.topic_raw, value=value, key=key, on_delivery=delivered)
                break
            except BufferError:  # local queue full: let deliveries drain
                producer.poll(0.5)
        producer.poll(0)
        sent += 1
        on_sent(1)
    if producer.flush(60) > 0 or errors:
        raise StackError(f"Kafka did not accept {len(errors) or 'some'} events on {settings.topic_raw} "
                         f"at {settings.kafka_brokers}: {errors[:3]}")
    return sent


def catalogue_events(path: Path, preset: str = "auto", *, noise: float = 0.0, limit: int | None = None,
                     seed: int = 0, mapping: ColumnMapping | None = None) -> Iterable[tuple[bytes | None, bytes]]:
    """(key, JSON bytes) for each catalogue row, optionally dirtied like a real affiliate feed.

    ``mapping`` (``--columns``/``--mapping``) names the columns of a catalogue prodcat does not know.
    """
    rng = random.Random(seed)
    for i, raw in enumerate(read_catalogue(path, preset, mapping=mapping)):
        if limit is not None and i >= limit:
            return
        if noise > 0:
            raw = add_noise(raw, rng, noise)
        yield event_key(raw), json.dumps(raw, ensure_ascii=False, default=str).encode()
