"""The Faust app, top to bottom: topics, the classifier agent, the model watcher, the web pages.

raw bytes -> BatchScheduler -> BatchProcessor (parse, skip unchanged, images, categorise, sinks) -> ack.
Events are acked (so their offsets committed) only after every sink acknowledged them: a
crash replays the batch, and the idempotent sinks make the replay harmless.
"""

from __future__ import annotations

import asyncio
import ssl
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import faust
from aiohttp.web import Response
from confluent_kafka.admin import AdminClient
from elasticsearch import AsyncElasticsearch
from elasticsearch.serializer import OrjsonSerializer
from mode import CrashingSupervisor
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.asyncio import Redis

from prodcat.categoriser import Categoriser
from prodcat.rules import RuleSet
from prodcat.sampling import StreamSampler
from prodcat.settings import Settings
from prodcat.taxonomy import Taxonomy
from prodcat.web import access_middleware
from runtime.deadletter import DeadLetter, RawEvent
from runtime.model_updates import Announcement, AnnouncementReader
from runtime.policy import ErrorPolicy, Health
from runtime.sinks.base import Message, Sink
from runtime.sinks.elastic import ElasticSink
from runtime.sinks.kafka import KafkaSink
from streams.dedup import UnchangedFilter
from streams.labelling import LabellingGate, LabellingPolicy, LabellingSampler
from streams.lag import consumer_lag
from streams.processor import (
    BatchProcessor,
    CategoriserSlot,
    ImageSink,
    ImageStage,
    Prepared,
    Topics,
)
from streams.scheduler import BatchScheduler
from streams.worker_metrics import WorkerMetrics


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


async def _reachable(check) -> bool:
    try:
        return bool(await asyncio.wait_for(check, timeout=5))
    except Exception:  # noqa: BLE001 - any failure means "not reachable"
        return False


def raw_event(event: faust.EventT) -> RawEvent:
    """What the pipeline keeps of a Faust event: bytes, key and where it came from."""
    return RawEvent(event.value, event.key, event.message.topic, event.message.partition, event.message.offset)


class _Converted:
    """The processor as the scheduler's handler, taking Faust events."""

    def __init__(self, processor: BatchProcessor) -> None:
        self.processor = processor

    async def prepare(self, events: Sequence[faust.EventT]) -> Prepared:
        return await self.processor.prepare([raw_event(e) for e in events])

    async def deliver(self, prepared: Prepared) -> None:
        await self.processor.deliver(prepared)


class LabelIntake(Protocol):
    """Stores a batch of label events; returns their dead letters, already sent (see retrain/intake.py)."""

    async def ensure_index(self) -> None: ...

    async def write(self, events: Sequence[RawEvent], taxonomy: Taxonomy) -> list[DeadLetter]: ...


# (Elasticsearch client, Kafka sink, error policy, the labelling gate that remembers each request's p)
LabelIntakeFactory = Callable[[AsyncElasticsearch, Sink[Message], ErrorPolicy, LabellingGate], LabelIntake]


def create_app(settings: Settings, categoriser: Categoriser, *,
               load_model: Callable[[Announcement], Categoriser] | None = None,
               images: ImageStage | None = None, image_sink: ImageSink | None = None,
               rules: RuleSet | None = None, label_intake: LabelIntakeFactory | None = None) -> faust.App:
    """The worker's Faust app. ``label_intake`` (retrain's, wired in by the CLI) stores human labels
    from labelling.labels; without it the worker does not consume that topic."""
    datadir = settings.state_dir / "faust" / settings.consumer_group  # not the working directory
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.consumer_group,
        broker=[f"kafka://{b.strip()}" for b in settings.kafka_brokers.split(",")],
        broker_credentials=broker_credentials(settings),
        store="memory://",
        datadir=str(datadir),
        web_host=settings.web_host,
        web_bind=settings.web_host,  # Faust binds 0.0.0.0 unless told
        web_port=settings.web_port,
        web_application_options={"middlewares": [access_middleware(
            settings.web_host, settings.web_token.get_secret_value() if settings.web_token else None,
            service="the worker's /metrics and /health", token_hint="set PRODCAT_WEB_TOKEN")]},
        topic_partitions=settings.topic_partitions,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        broker_commit_interval=1.0,
        # a killed worker's partitions wait for its session to expire: short, so a restart consumes soon
        broker_session_timeout=settings.kafka_session_timeout_s,
        broker_heartbeat_interval=settings.kafka_heartbeat_interval_s,
        # static membership when configured; the address keeps the id and Faust's assignment together
        consumer_group_instance_id=(f"{settings.worker_instance_id}@{settings.web_host}:{settings.web_port}"
                                    if settings.worker_instance_id else None),
        # on shutdown do not wait for unacked events (a batch stuck on a sink would block it forever):
        # they are simply consumed again by the next worker
        stream_wait_empty=False,
    )
    raw: dict[str, Any] = dict(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    products_raw = app.topic(settings.topic_raw, **raw)

    metrics = WorkerMetrics()
    health = Health()
    policy = ErrorPolicy(health)
    # orjson: bulk bodies are encoded on the event loop, which every stage of the worker shares
    es = AsyncElasticsearch(**settings.es_client_kwargs(), serializer=OrjsonSerializer())
    redis = Redis.from_url(settings.redis_url, **settings.redis_kwargs())
    elastic = ElasticSink(es, settings.es_index_products)
    kafka = KafkaSink(settings.kafka_client_config())  # outputs: categorised, label requests, dead letters
    slot = CategoriserSlot(categoriser)
    metrics.model.info({"version": categoriser.version})
    labelling = LabellingPolicy.from_settings(settings)
    gate = LabellingGate(redis, labelling)
    # a seeded draw per worker: reproducible, and workers of one fleet do not draw in lockstep
    identity = f"{settings.consumer_group}|{settings.worker_instance_id or ''}|{settings.web_host}:{settings.web_port}"
    seed = [settings.labelling_seed, zlib.crc32(identity.encode())]
    sampler = LabellingSampler(StreamSampler(labelling.sampling, seed=seed))
    processor = BatchProcessor(
        slot=slot, elastic=elastic, kafka=kafka, policy=policy,
        topics=Topics(settings.topic_categorised, settings.topic_deadletter, settings.topic_label_requests),
        # one thread: the model holds the CPU anyway, and batches stay in order
        cpu=ThreadPoolExecutor(max_workers=1, thread_name_prefix="categorise"),
        metrics=metrics, limits=settings.input_limits(),
        # per index: products written to another index (a rebuild) are not "unchanged" there
        unchanged=UnchangedFilter(redis, settings.unchanged_ttl_s, namespace=f"prodcat:seen:{settings.es_index_products}")
        if settings.skip_unchanged else None,
        images=images, image_sink=image_sink,
        labelling=gate if settings.labelling_budget_per_day > 0 else None,
        labelling_sampler=sampler if settings.labelling_budget_per_day > 0 else None, rules=rules,
    )
    # labels that come back without p get it from the gate's record of the request
    intake = label_intake(es, kafka, policy, gate) if label_intake is not None else None
    index_ready = asyncio.Event()

    @app.task
    async def create_indices() -> None:
        await elastic.ensure_index()
        if intake is not None:
            await intake.ensure_index()
        index_ready.set()

    async def before_batch(events) -> None:
        await index_ready.wait()
        metrics.events_in.labels(events[0].message.topic).inc(len(events))

    # an unexpected error stops the worker (its batch is not acked, so it replays on restart)
    # instead of leaving a dead agent holding its partitions
    @app.agent(products_raw, supervisor_strategy=CrashingSupervisor)
    async def classify(stream: faust.StreamT) -> None:
        async def ack(events) -> None:
            for event in events:
                await stream.ack(event)

        scheduler = BatchScheduler(_Converted(processor), ack, in_flight=settings.batches_in_flight,
                                   before_batch=before_batch)
        # Faust's StreamT protocol does not declare noack_take; the Stream it passes has it
        await scheduler.run(stream.noack_take(settings.batch_size, within=settings.batch_within_s))  # type: ignore[attr-defined]

    if intake is not None:
        @app.agent(app.topic(settings.topic_labels, **raw), supervisor_strategy=CrashingSupervisor)
        async def store_labels(stream: faust.StreamT) -> None:
            """labelling.labels -> the label store; bad or unknown-product labels -> dead letters."""
            async for events in stream.noack_take(settings.batch_size, within=settings.batch_within_s):  # type: ignore[attr-defined]
                await before_batch(events)
                dead = await intake.write([raw_event(e) for e in events], slot.current.taxonomy)
                for d in dead:
                    metrics.deadletters.labels(str(d.stage)).inc()
                for event in events:
                    await stream.ack(event)

    if load_model is not None:
        # its own thread: loading a model must not stall the batches still running on the old one
        loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model-loader")
        reader = AnnouncementReader(settings)

        @app.timer(settings.model_check_interval_s)
        async def watch_models() -> None:
            loop = asyncio.get_running_loop()
            news = await loop.run_in_executor(loader, reader.latest)
            if news is not None and news.version != slot.current.version:
                slot.swap(await loop.run_in_executor(loader, load_model, news))
                metrics.model.info({"version": news.version})
                app.log.info("now classifying with model %s", news.version)

    @app.page("/metrics")
    async def prometheus(_self, request):
        rows = await asyncio.get_running_loop().run_in_executor(
            None, consumer_lag, settings, settings.consumer_group, [settings.topic_raw])
        for row in rows:
            metrics.lag.labels(row.topic, str(row.partition)).set(row.lag)
        metrics.set_health(health.waiting)  # prodcat_ready / prodcat_waiting{stage}: the alert rules read them
        return Response(body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    admin = AdminClient({**settings.kafka_client_config(), "log_level": 0})  # one connection, reused

    async def kafka_alive() -> bool:
        return bool(await asyncio.get_running_loop().run_in_executor(None, lambda: admin.list_topics(timeout=4)))

    @app.page("/health")
    async def health_page(_self, request):
        checks = {"model": slot.current.version, "elasticsearch": await _reachable(es.ping()),
                  "redis": await _reachable(redis.ping()), "kafka": await _reachable(kafka_alive())}
        if image_sink is not None:
            checks["milvus"] = await _reachable(image_sink.ping())
        # a stage waiting out an outage is not ready even if a ping gets through now
        ready = all(checks.values()) and health.ready
        return _self.json({"ready": ready, **checks, "waiting": dict(health.waiting)}, status=200 if ready else 503)

    @app.on_before_shutdown.connect  # type: ignore[arg-type]  # mode types receivers as plain callables
    async def close_clients(_app: faust.App, *_args: Any, signal: Any = None, **_kwargs: Any) -> None:
        await es.close()
        await redis.aclose()
        await asyncio.get_running_loop().run_in_executor(None, kafka.close)

    return app
