"""The labelling tool's Kafka side: a consumer thread filling the queue, and the label publisher.

The reader consumes ``labelling.requests`` in the tool's own consumer group and commits only
the offsets the queue says are safe (the oldest request not yet labelled, per partition). The
publisher sends one ``labelling.labels`` message per decision and waits for the broker's
acknowledgement, so the page only says "sent" for labels Kafka holds.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from prodcat.errors import ProdcatError
from prodcat.settings import Settings
from retrain.label_store import HumanLabel
from retrain.labelling_queue import RequestQueue, parse_request

__all__ = ["LabelPublisher", "LabelsNotAcknowledged", "RequestReader", "label_message"]

log = logging.getLogger(__name__)

DELIVERY_TIMEOUT_S = 30.0


class RequestReader:
    """The consumer thread: polls labelling.requests into the queue, pauses while it is full."""

    def __init__(self, settings: Settings, queue: RequestQueue, group: str) -> None:
        self.settings, self.queue, self.group = settings, queue, group
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="labelling-requests", daemon=True)
        self._error: str | None = None

    @property
    def error(self) -> str | None:
        """What is wrong with reading requests now (shown on the page); None while all is well."""
        if self._error is None and self._thread.ident is not None and not self._thread.is_alive() \
                and not self._stop.is_set():
            return "the request reader stopped unexpectedly (see the tool's log); restart the tool"
        return self._error

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Commit what is safe and close the consumer (waits up to 15 s for the thread)."""
        self._stop.set()
        self._thread.join(15)

    def _run(self) -> None:
        consumer = Consumer({**self.settings.kafka_client_config(), "group.id": self.group,
                             "auto.offset.reset": "earliest", "enable.auto.commit": False,
                             "log_level": 0})

        def revoked(cons: Consumer, partitions: list[TopicPartition]) -> None:
            self._commit(cons, asynchronous=False)
            self.queue.drop_partitions({(p.topic, p.partition) for p in partitions})

        consumer.subscribe([self.settings.topic_label_requests], on_revoke=revoked)
        paused, last_commit, committed = False, time.monotonic(), {}
        try:
            while not self._stop.is_set():
                full = self.queue.full
                if full != paused:
                    assignment = consumer.assignment()
                    if assignment or not full:  # nothing assigned yet: pause once there is
                        (consumer.pause if full else consumer.resume)(assignment)
                        paused = full
                msg = consumer.poll(0.2)
                if msg is not None:
                    if msg.error():
                        self._error = str(msg.error())
                        log.warning("labelling requests: %s", msg.error())
                    else:
                        self._error = None
                        request = parse_request(msg.value())
                        if request is None:
                            log.warning("labelling request at %s[%d]@%d is not a JSON object with an id; skipped",
                                        msg.topic(), msg.partition(), msg.offset())
                            self.queue.ignore(msg.topic(), msg.partition(), msg.offset())
                        else:
                            self.queue.add(request, msg.topic(), msg.partition(), msg.offset())
                if time.monotonic() - last_commit > 2.0:
                    committed = self._commit(consumer, asynchronous=True, previous=committed)
                    last_commit = time.monotonic()
            self._commit(consumer, asynchronous=False)
        except KafkaException as exc:  # reported on /stats; the page keeps what it has
            self._error = f"Kafka: {exc}"
            log.exception("labelling request reader stopped")
        finally:
            consumer.close()

    def _commit(self, consumer: Consumer, *, asynchronous: bool,
                previous: dict[tuple[str, int], int] | None = None) -> dict[tuple[str, int], int]:
        offsets = self.queue.commit_offsets()
        changed = [TopicPartition(t, p, o) for (t, p), o in offsets.items() if (previous or {}).get((t, p)) != o]
        if changed:
            try:
                consumer.commit(offsets=changed, asynchronous=asynchronous)
            except KafkaException as exc:
                log.warning("labelling requests: commit failed (%s); will retry", exc)
                return previous or {}
        return offsets


def label_message(label: HumanLabel) -> bytes:
    """The labelling.labels value of one decision; ``p`` and the model version only when known."""
    value: dict[str, Any] = {"product_id": label.product_id, "category": label.category, "positive": label.positive,
                             "labeller": label.labeller, "labelled_at": label.labelled_at.isoformat()}
    if label.p is not None:
        value["p"] = label.p
    if label.model_version:
        value["model_version"] = label.model_version
    return json.dumps(value).encode()


class LabelPublisher:
    """labelling.labels: one message per decision, key = product id, waits for acknowledgement."""

    def __init__(self, settings: Settings) -> None:
        self.topic = settings.topic_labels
        self._producer = Producer({**settings.kafka_client_config(), "acks": "all", "enable.idempotence": True,
                                   "linger.ms": 5, "log_level": 0})
        self._lock = threading.Lock()

    def publish(self, labels: list[HumanLabel]) -> None:
        """Send ``labels`` and wait until Kafka has them; :class:`LabelsNotAcknowledged` if not."""
        errors: list[str] = []

        def delivered(err: Any, _msg: Any) -> None:
            if err is not None:
                errors.append(str(err))

        with self._lock:  # one flush at a time: each request waits for its own messages
            for label in labels:
                self._producer.produce(self.topic, key=label.product_id.encode(), value=label_message(label),
                                       on_delivery=delivered)
            left = self._producer.flush(DELIVERY_TIMEOUT_S)
        if left or errors:
            raise LabelsNotAcknowledged(f"Kafka did not acknowledge {len(errors) or left} label(s) on {self.topic}: "
                               f"{errors[:2] or 'timed out'}; nothing was lost on your side, submit again")

    def close(self) -> None:
        """Deliver what is still buffered (up to 5 s)."""
        self._producer.flush(5)


class LabelsNotAcknowledged(ProdcatError):
    """Kafka did not acknowledge every label of a submission in time; the labeller may submit again."""
