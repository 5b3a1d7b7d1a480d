"""The no-Faust limit: the stream's I/O done by the plainest loop, to measure the worker against.

    PRODCAT_*=... .venv/bin/python benchmarks/stream_limit.py     (benchmarks/stream.py starts it)

One process, one thread, no Faust: a confluent-kafka consumer takes up to ``batch_size`` raw
events, orjson decodes them, elasticsearch-py's ``helpers.bulk`` writes them to the products
index (same mapping, doc id = product id, external_gte versions like the worker), one
products.categorised message per event goes out through a confluent-kafka producer (acks=all,
idempotent, as the worker's) and every delivery is awaited; only then are the batch's offsets
committed. No cleaning, no categoriser, no dedup, no metrics: what is left is the work every
mode has to do, so its throughput is the ceiling of this machine for this work.
Runs until SIGTERM/SIGINT.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator, Sequence

import orjson
from confluent_kafka import Consumer, KafkaError, Message, Producer
from elasticsearch import ApiError, Elasticsearch, helpers
from elasticsearch.serializer import OrjsonSerializer

from prodcat.record import canonical_field
from prodcat.settings import Settings
from runtime.sinks.elastic import PRODUCTS_MAPPING


class LimitLoop:
    """Kafka -> orjson -> Elasticsearch bulk -> one output message per event, in batches, no Faust."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.consumer = Consumer({
            **settings.kafka_client_config(), "group.id": settings.consumer_group,
            "auto.offset.reset": "earliest", "enable.auto.commit": False,
        })
        self.producer = Producer({**settings.kafka_client_config(), "acks": "all", "enable.idempotence": True,
                                  "linger.ms": 5, "compression.type": "lz4"})  # the worker's KafkaSink settings
        self.es = Elasticsearch(**settings.es_client_kwargs(), serializer=OrjsonSerializer())
        self.stopping = False

    def ensure_index(self) -> None:
        """The products index with the worker's mapping (created by whoever comes first)."""
        if self.es.indices.exists(index=self.settings.es_index_products):
            return
        try:
            self.es.indices.create(index=self.settings.es_index_products, mappings=PRODUCTS_MAPPING,
                                   settings={"number_of_replicas": 0})
        except ApiError as exc:
            if exc.error != "resource_already_exists_exception":
                raise

    def _actions(self, messages: Sequence[Message]) -> Iterator[dict]:
        for msg in messages:
            raw = orjson.loads(msg.value())
            # the feed's field names mapped to the index's (product_name -> title), so Elasticsearch
            # analyses the same text fields as in the worker's documents; no cleaning
            source = {canonical_field(k) or k: v for k, v in raw.items()}
            source["id"] = msg.key().decode()
            yield {"_op_type": "index", "_index": self.settings.es_index_products, "_id": source["id"],
                   "version": 0, "version_type": "external_gte", "_source": source}

    def handle(self, messages: Sequence[Message]) -> None:
        """One batch: bulk write, outputs produced and delivered, then the offsets committed."""
        _, errors = helpers.bulk(self.es, self._actions(messages), raise_on_error=False, chunk_size=500)
        if errors:
            raise SystemExit(f"Elasticsearch refused {len(errors)} documents: {errors[:2]}")
        failed: list[KafkaError] = []

        def delivered(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                failed.append(err)

        for msg in messages:
            value = orjson.dumps({"id": msg.key().decode(), "categories": [], "model_version": "no-faust"})
            while True:
                try:
                    self.producer.produce(self.settings.topic_categorised, key=msg.key(), value=value,
                                          on_delivery=delivered)
                    break
                except BufferError:  # local queue full: serve delivery reports to drain it
                    self.producer.poll(0.05)
        if self.producer.flush(60) or failed:
            raise SystemExit(f"Kafka did not take {len(failed) or 'some'} outputs: {failed[:2]}")
        # every output acknowledged: now the offsets may be committed. Not awaited (the worker's
        # Faust commits every second in the background, not per batch either)
        self.consumer.commit(asynchronous=True)

    def run(self) -> None:
        """Consume until asked to stop."""
        self.ensure_index()
        self.consumer.subscribe([self.settings.topic_raw])
        try:
            while not self.stopping:
                taken = self.consumer.consume(self.settings.batch_size, timeout=self.settings.batch_within_s)
                messages = [m for m in taken if m.error() is None]
                if messages:
                    self.handle(messages)
        finally:
            self.consumer.close()
            self.producer.flush(10)

    def stop(self, *_args: object) -> None:
        """Signal handler: finish the current batch, then leave the loop."""
        self.stopping = True


def main() -> None:
    loop = LimitLoop(Settings.load())
    signal.signal(signal.SIGTERM, loop.stop)
    signal.signal(signal.SIGINT, loop.stop)
    loop.run()


if __name__ == "__main__":
    main()
