"""The worker's Kafka outputs (products.categorised, labelling.requests, dead letters) via librdkafka.

A batch's messages are handed to confluent-kafka's producer in one loop and awaited as one future,
resolved by the delivery reports. Sending the same messages one by one through Faust cost
0.3-0.4 ms of event-loop time per message, as much as the whole Elasticsearch bulk write.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping, Sequence

from confluent_kafka import KafkaError, KafkaException, Producer

from runtime.policy import Outage
from runtime.sinks.base import Message, WriteResult


class KafkaSink:
    """Produces batches of messages; returns once the broker has all of them (acks=all, idempotent).

    A message the broker refuses for itself (too large, ...) comes back in the result's ``failed``;
    a broker that cannot be reached (librdkafka's own retries ran out) raises :class:`Outage`.
    """

    def __init__(self, client_config: Mapping[str, str], *, linger_ms: int = 5,
                 max_message_bytes: int = 64 << 20) -> None:
        # message.max.bytes bounds the UNcompressed message here: a dead letter carries an event
        # the broker accepted compressed, which may be far larger than the broker's 1 MB limit
        self._producer = Producer({**client_config, "acks": "all", "enable.idempotence": True,
                                   "linger.ms": linger_ms, "compression.type": "lz4",
                                   "message.max.bytes": max_message_bytes})
        self._closed = threading.Event()
        # delivery reports are served by poll(); a thread keeps polling so the event loop never blocks
        self._poller = threading.Thread(target=self._poll, name="kafka-sink-poll", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._closed.is_set():
            self._producer.poll(0.05)

    async def write(self, messages: Sequence[Message]) -> WriteResult:
        """Produce ``messages`` in order and wait for every delivery report."""
        errors = await self._produce(messages)
        outages = sorted({e.str() for e in errors.values() if _is_outage(e)})
        if outages:
            raise Outage(f"Kafka did not take {len(errors)} of {len(messages)} messages: {'; '.join(outages)}")
        if len(errors) > 1:
            # the broker refuses a whole record batch when one message in it is too large: sent
            # alone, the innocent neighbours go through (after the rest of the batch, by then)
            for i in sorted(errors):
                again = await self._produce([messages[i]])
                if again:
                    errors[i] = again[0]
                else:
                    del errors[i]
        return WriteResult(failed={i: f"{messages[i].topic}: {e.str()}" for i, e in errors.items()})

    async def _produce(self, messages: Sequence[Message]) -> dict[int, KafkaError]:
        """Produce and await the delivery reports; the errors by position."""
        if not messages:
            return {}
        loop = asyncio.get_running_loop()
        remaining, errors = len(messages), {}
        done: asyncio.Future[None] = loop.create_future()

        def delivered(i: int, err: KafkaError | None) -> None:  # on the poll thread
            nonlocal remaining
            if err is not None:
                errors[i] = err
            remaining -= 1
            if remaining == 0:
                loop.call_soon_threadsafe(finish)

        def finish() -> None:  # on the event loop
            if not done.done():
                done.set_result(None)

        def report(i: int) -> Callable[[KafkaError | None, object], None]:
            return lambda err, _msg: delivered(i, err)

        for i, (topic, key, value, headers) in enumerate(messages):
            while True:
                try:
                    self._producer.produce(topic, value=value, key=key, headers=headers,
                                           on_delivery=report(i))
                    break
                except BufferError:  # local queue full: the poll thread is draining it
                    await asyncio.sleep(0.01)
                except KafkaException as exc:  # refused before sending (e.g. larger than message.max.bytes)
                    delivered(i, exc.args[0])
                    break
        await done
        return errors

    def close(self, timeout_s: float = 10.0) -> None:
        """Deliver what is queued (up to ``timeout_s``) and stop the poll thread."""
        self._producer.flush(timeout_s)
        self._closed.set()
        self._poller.join()


def _is_outage(err: KafkaError) -> bool:
    # retriable() covers the broker-side transient errors; these are librdkafka's own ways of
    # saying "no broker took it in time"
    return err.retriable() or err.code() in (KafkaError._MSG_TIMED_OUT, KafkaError._TRANSPORT,
                                              KafkaError._ALL_BROKERS_DOWN, KafkaError._TIMED_OUT)
