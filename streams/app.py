"""The Faust app, top to bottom: topics, the classifier agent, the model watcher, the web pages.

raw bytes -> BatchProcessor (parse, skip unchanged, images, categorise, sinks) -> ack.
Events are acked (so their offsets committed) only after every sink acknowledged them: a
crash replays the batch, and the idempotent sinks make the replay harmless.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import faust
from aiohttp.web import Response
from confluent_kafka.admin import AdminClient
from elasticsearch import AsyncElasticsearch
from elasticsearch.serializer import OrjsonSerializer
from mode import CrashingSupervisor
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.asyncio import Redis

from prodcat.categoriser import Categoriser
from prodcat.errors import InvalidRecord
from prodcat.rules import RuleSet
from prodcat.settings import Settings
from retrain.labels import LabelStore, parse_label
from streams.dedup import UnchangedFilter
from streams.labelling import LabellingGate, LabellingPolicy
from streams.lag import consumer_lag
from streams.metrics import WorkerMetrics
from streams.model_updates import Announcement, AnnouncementReader
from streams.pipeline import RawEvent
from streams.processor import BatchProcessor, CategoriserSlot, ImageSink, ImageStage, Topics
from streams.sinks.elastic import ElasticSink
from streams.sinks.kafka import KafkaSink


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


def create_app(settings: Settings, categoriser: Categoriser, *,
               load_model: Callable[[Announcement], Categoriser] | None = None,
               images: ImageStage | None = None, image_sink: ImageSink | None = None,
               rules: RuleSet | None = None) -> faust.App:
    datadir = settings.state_dir / "faust" / settings.consumer_group  # not the working directory
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.consumer_group,
        broker=[f"kafka://{b.strip()}" for b in settings.kafka_brokers.split(",")],
        broker_credentials=broker_credentials(settings),
        store="memory://",
        datadir=str(datadir),
        web_host=settings.web_host,
        web_port=settings.web_port,
        topic_partitions=settings.topic_partitions,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        broker_commit_interval=1.0,
        # on shutdown do not wait for unacked events (a batch stuck on a sink would block it forever):
        # they are simply consumed again by the next worker
        stream_wait_empty=False,
    )
    raw = dict(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    products_raw = app.topic(settings.topic_raw, **raw)
    labels_topic = app.topic(settings.topic_labels, **raw)

    metrics = WorkerMetrics()
    # orjson: bulk bodies are encoded on the event loop, which every stage of the worker shares
    es = AsyncElasticsearch(**settings.es_client_kwargs(), serializer=OrjsonSerializer())
    redis = Redis.from_url(settings.redis_url, **settings.redis_kwargs())
    elastic = ElasticSink(es, settings.es_index_products)
    kafka = KafkaSink(settings.kafka_client_config())  # outputs: categorised, label requests, dead letters
    slot = CategoriserSlot(categoriser)
    metrics.model.info({"version": categoriser.version})
    policy = LabellingPolicy(settings.labelling_uncertainty_min, settings.labelling_disagreement_min,
                             settings.labelling_window_s, settings.labelling_max_per_day)
    processor = BatchProcessor(
        slot=slot, elastic=elastic, kafka=kafka,
        topics=Topics(settings.topic_categorised, settings.topic_deadletter, settings.topic_label_requests),
        # one thread: the model holds the CPU anyway, and batches stay in order
        cpu=ThreadPoolExecutor(max_workers=1, thread_name_prefix="categorise"),
        metrics=metrics, limits=settings.input_limits(),
        # per index: products written to another index (a rebuild) are not "unchanged" there
        unchanged=UnchangedFilter(redis, settings.unchanged_ttl_s, namespace=f"prodcat:seen:{settings.es_index_products}")
        if settings.skip_unchanged else None,
        images=images, image_sink=image_sink,
        labelling=LabellingGate(redis, policy), labelling_policy=policy, rules=rules,
    )
    label_store = LabelStore(es, index=settings.es_index_labels, products_index=settings.es_index_products)
    index_ready = asyncio.Event()

    @app.task
    async def create_indices() -> None:
        await elastic.ensure_index()
        await label_store.ensure_index()
        index_ready.set()

    # an unexpected error stops the worker (its batch is not acked, so it replays on restart)
    # instead of leaving a dead agent holding its partitions
    @app.agent(products_raw, supervisor_strategy=CrashingSupervisor)
    async def classify(stream: faust.StreamT) -> None:
        # Each batch is handled by its own task, so this loop returns to Faust at once and the next
        # batch fills while the current one is categorised (Faust's take buffers nothing while the
        # loop body runs). Up to batches_in_flight tasks: prepares run one at a time in offset order
        # (the CPU work is serial anyway); each delivery waits for the one before it, so sinks see
        # batches and acks happen in offset order. A failed task fails every later one and is
        # re-raised here at once, which stops the worker (its events are not acked: they replay).
        in_flight: deque[asyncio.Task] = deque()
        preparing = asyncio.Lock()  # FIFO: batches are prepared in the order they were taken
        failed: asyncio.Future = asyncio.get_running_loop().create_future()

        def watch(task: asyncio.Task) -> None:  # a failure must stop the worker now, not at the next batch
            if not task.cancelled() and task.exception() is not None and not failed.done():
                failed.set_exception(task.exception())

        async def handle(events, previous: asyncio.Task | None) -> None:
            async with preparing:
                prepared = await processor.prepare([RawEvent(e.value, e.key, e.message.topic, e.message.partition,
                                                             e.message.offset) for e in events])
            if previous is not None:
                await previous
            await processor.deliver(prepared)
            for event in events:
                await stream.ack(event)

        batches = aiter(stream.noack_take(settings.batch_size, within=settings.batch_within_s))
        while True:
            taken = asyncio.ensure_future(anext(batches))
            await asyncio.wait([taken, failed], return_when=asyncio.FIRST_COMPLETED)
            if failed.done():
                taken.cancel()
                failed.result()  # raises: the agent (and with it the worker) stops
            try:
                events = taken.result()
            except StopAsyncIteration:  # the stream ended (the worker is stopping)
                return
            await index_ready.wait()
            metrics.events_in.labels(settings.topic_raw).inc(len(events))
            while in_flight and (in_flight[0].done() or len(in_flight) >= settings.batches_in_flight):
                await in_flight.popleft()
            task = asyncio.ensure_future(handle(events, in_flight[-1] if in_flight else None))
            task.add_done_callback(watch)
            in_flight.append(task)

    @app.agent(labels_topic, supervisor_strategy=CrashingSupervisor)
    async def store_labels(stream: faust.StreamT) -> None:
        """labelling.labels -> the label store; bad or unknown-product labels -> dead letters."""
        async for events in stream.noack_take(settings.batch_size, within=settings.batch_within_s):
            await index_ready.wait()
            taxonomy = slot.current.taxonomy
            good, rejected = [], []
            for e in events:
                event = RawEvent(e.value, e.key, e.message.topic, e.message.partition, e.message.offset)
                try:
                    good.append((event, parse_label(e.value, taxonomy, key=e.key)))
                except InvalidRecord as exc:
                    rejected.append(event.reject(exc.stage, exc.reason))
            result = await label_store.write([label for _, label in good])
            unknown = set(result.unknown_products)
            rejected += [event.reject("validate", f"unknown product {label.product_id}")
                         for event, label in good if label.product_id in unknown]
            rejected += [event.reject("sink", result.failed[label.doc_id])
                         for event, label in good if label.doc_id in result.failed]
            await kafka.send_many([(settings.topic_deadletter, r.key.encode() if r.key else None,
                                    r.model_dump_json().encode()) for r in rejected])
            for r in rejected:
                metrics.deadletters.labels(r.stage).inc()
            metrics.events_in.labels(settings.topic_labels).inc(len(events))
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
        return Response(body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    admin = AdminClient({**settings.kafka_client_config(), "log_level": 0})  # one connection, reused

    async def kafka_alive() -> bool:
        return bool(await asyncio.get_running_loop().run_in_executor(None, lambda: admin.list_topics(timeout=4)))

    @app.page("/health")
    async def health(_self, request):
        checks = {"model": slot.current.version, "elasticsearch": await _reachable(es.ping()),
                  "redis": await _reachable(redis.ping()), "kafka": await _reachable(kafka_alive())}
        if image_sink is not None:
            checks["milvus"] = await _reachable(image_sink.ping())
        ready = all(checks.values())
        return _self.json({"ready": ready, **checks}, status=200 if ready else 503)

    @app.on_before_shutdown.connect
    async def close_clients(_app, **_kwargs) -> None:
        await es.close()
        await redis.aclose()
        await asyncio.get_running_loop().run_in_executor(None, kafka.close)

    return app
