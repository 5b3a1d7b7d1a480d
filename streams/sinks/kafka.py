"""The worker's Kafka outputs (products.categorised, labelling.requests, dead letters) via librdkafka.

A batch's messages are handed to confluent-kafka's producer in one loop and awaited as one future,
resolved by the delivery reports. Sending the same messages one by one through Faust cost
0.3-0.4 ms of event-loop time per message, as much as the whole Elasticsearch bulk write.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping, Sequence

from confluent_kafka import KafkaError, Producer

# (topic, key, value)
Message = tuple[str, bytes | None, bytes]


class KafkaDeliveryError(RuntimeError):
    """The broker did not take some messages (after librdkafka's own retries)."""


class KafkaSink:
    """Sends batches of messages and returns once the broker has all of them (acks=all, idempotent)."""

    def __init__(self, client_config: Mapping[str, str], *, linger_ms: int = 5) -> None:
        self._producer = Producer({**client_config, "acks": "all", "enable.idempotence": True,
                                   "linger.ms": linger_ms, "compression.type": "lz4"})
        self._closed = threading.Event()
        # delivery reports are served by poll(); a thread keeps polling so the event loop never blocks
        self._poller = threading.Thread(target=self._poll, name="kafka-sink-poll", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._closed.is_set():
            self._producer.poll(0.05)

    async def send_many(self, messages: Sequence[Message]) -> None:
        """Produce ``messages`` in order; raises :class:`KafkaDeliveryError` if any was refused."""
        if not messages:
            return
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        remaining, errors = len(messages), []

        def delivered(err: KafkaError | None, _msg) -> None:  # on the poll thread
            nonlocal remaining
            if err is not None:
                errors.append(err)
            remaining -= 1
            if remaining == 0:
                loop.call_soon_threadsafe(lambda: done.done() or done.set_result(None))

        for topic, key, value in messages:
            while True:
                try:
                    self._producer.produce(topic, value=value, key=key, on_delivery=delivered)
                    break
                except BufferError:  # local queue full: the poll thread is draining it
                    await asyncio.sleep(0.01)
        await done
        if errors:
            raise KafkaDeliveryError(f"Kafka refused {len(errors)} of {len(messages)} messages: "
                                     f"{'; '.join(sorted({e.str() for e in errors}))}")

    def close(self, timeout_s: float = 10.0) -> None:
        """Deliver what is queued (up to ``timeout_s``) and stop the poll thread."""
        self._producer.flush(timeout_s)
        self._closed.set()
        self._poller.join()
