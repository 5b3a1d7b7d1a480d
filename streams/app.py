"""The Faust app, top to bottom: topics, the classifier agent, and where its results go.

raw bytes -> parse/validate/clean -> categorise (off the event loop) -> Elasticsearch bulk
-> products.categorised; rejects -> products.deadletter. Events are acked (and so their
offsets committed) only after every sink has acknowledged them: a crash replays the batch,
and the idempotent sinks make the replay harmless.
"""

from __future__ import annotations

import asyncio
import ssl
from concurrent.futures import ThreadPoolExecutor

import faust
from elasticsearch import AsyncElasticsearch

from prodcat.categoriser import Categoriser
from prodcat.settings import Settings
from prodcat.taxonomy import Taxonomy
from streams.pipeline import RawEvent, categorised_message, process_batch, product_document, updated_version
from streams.sinks.elastic import Document, ElasticSink


def broker_credentials(settings: Settings) -> faust.types.auth.CredentialsT | None:
    """Faust credentials from the settings (SASL and/or TLS); None for plaintext."""
    protocol = settings.kafka_security_protocol
    context = None
    if protocol.endswith("SSL"):
        context = ssl.create_default_context(cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None)
    if protocol.startswith("SASL"):
        password = settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else None
        return faust.SASLCredentials(username=settings.kafka_sasl_username, password=password,
                                     ssl_context=context, mechanism=settings.kafka_sasl_mechanism)
    return faust.SSLCredentials(context) if context else None


def create_app(settings: Settings, categoriser: Categoriser, taxonomy: Taxonomy) -> faust.App:
    app = faust.App(
        settings.consumer_group,
        broker=[f"kafka://{b.strip()}" for b in settings.kafka_brokers.split(",")],
        broker_credentials=broker_credentials(settings),
        store="memory://",
        web_host=settings.web_host,
        web_port=settings.web_port,
        topic_partitions=settings.topic_partitions,
        topic_allow_declare=False,  # streams.topics.ensure_topics creates them with our configs
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        broker_commit_interval=1.0,
    )
    raw = dict(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    products_raw = app.topic(settings.topic_raw, **raw)
    products_categorised = app.topic(settings.topic_categorised, **raw)
    deadletter = app.topic(settings.topic_deadletter, **raw)

    sink = ElasticSink(AsyncElasticsearch(**settings.es_client_kwargs()), settings.es_index_products)
    # one thread: the categoriser holds the CPU anyway, and batches stay in order
    cpu = ThreadPoolExecutor(max_workers=1, thread_name_prefix="categorise")
    index_ready = asyncio.Event()

    @app.task
    async def create_index() -> None:
        await sink.ensure_index()
        index_ready.set()

    @app.agent(products_raw)
    async def classify(stream: faust.StreamT) -> None:
        async for events in stream.noack_take(settings.batch_size, within=settings.batch_within_s):
            await index_ready.wait()
            batch = [RawEvent(e.value, e.key, e.message.topic, e.message.partition, e.message.offset)
                     for e in events]
            outcome = await asyncio.get_running_loop().run_in_executor(
                cpu, process_batch, batch, categoriser, settings.max_field_chars)
            version = categoriser.version
            written = await sink.write([
                Document(c.record.id, updated_version(c.record), product_document(c, taxonomy, version))
                for c in outcome.classified
            ])
            rejected = outcome.rejected + [c.event.reject("sink", written.failed[c.record.id])
                                           for c in outcome.classified if c.record.id in written.failed]
            sends = [await deadletter.send(key=r.key.encode() if r.key else None, value=r.model_dump_json().encode())
                     for r in rejected]
            sends += [await products_categorised.send(key=c.record.id.encode(),
                                                      value=categorised_message(c, taxonomy, version))
                      for c in outcome.classified if c.record.id not in written.failed]
            await asyncio.gather(*sends)  # delivered to the broker before we ack
            for event in events:
                await stream.ack(event)

    return app
