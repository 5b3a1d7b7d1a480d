"""Operating the worker on the real stack: skip unchanged, hot swap, lag, outages, two workers."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from elasticsearch import ApiError, Elasticsearch

from prodcat.feed import publish
from prodcat.stack import Stack
from runtime.deadletter import DeadLetter
from runtime.model_updates import Announcement, announce
from streams.lag import consumer_lag
from streams.topics import ensure_topics
from tests.helpers import drain, free_port, health

pytestmark = pytest.mark.integration
DATA = Path(__file__).resolve().parents[2] / "prodcat" / "data"


def product(i: int, title: str = "Men's Slim Fit Casual Shirt") -> tuple[bytes, bytes]:
    return f"p{i}".encode(), json.dumps({"id": f"p{i}", "title": f"{title} {i}",
                                         "category": "Clothing > Men's Clothing > Shirts"}).encode()


def es_ids(es: Elasticsearch, index: str) -> dict[str, dict]:
    try:
        es.indices.refresh(index=index)
        hits = es.search(index=index, size=10000, query={"match_all": {}})["hits"]["hits"]
    except ApiError:
        return {}
    return {h["_id"]: h["_source"] for h in hits}


def wait_until(predicate, timeout: float, what: str, worker=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker is not None and worker.proc.poll() is not None:
            pytest.fail(f"worker exited with {worker.proc.returncode}:\n{worker.log_tail()}")
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}" + (f"\n{worker.log_tail()}" if worker else ""))


def scrape(port: int) -> dict[tuple[str, str], float]:
    """Prometheus text -> {(metric name, labels text): value}."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30).read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name_labels, value = line.rsplit(" ", 1)
            name, _, labels = name_labels.partition("{")
            out[(name, labels.rstrip("}"))] = float(value)
    return out


def categorised_versions(settings) -> list[tuple[str, str]]:
    from confluent_kafka import Consumer

    consumer = Consumer({**settings.kafka_client_config(), "group.id": f"read-{time.time()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([settings.topic_categorised])
    out, idle = [], time.monotonic()
    while time.monotonic() - idle < 4:
        msg = consumer.poll(0.5)
        if msg is not None and not msg.error():
            value = json.loads(msg.value())
            out.append((value["id"], value["model_version"]))
            idle = time.monotonic()
    consumer.close()
    return out


def test_an_unchanged_product_is_classified_once(isolated, workers):
    ensure_topics(isolated)
    worker = workers(isolated)
    es = Elasticsearch(**isolated.es_client_kwargs())
    publish(isolated, [product(1), product(1), product(2)])
    wait_until(lambda: len(es_ids(es, isolated.es_index_products)) == 2, 120, "2 products", worker)
    publish(isolated, [product(1)])  # later, in another batch: still unchanged
    publish(isolated, [product(2, title="Women's Floral Wrap Dress")])  # changed: classified again
    wait_until(lambda: len([i for i, _ in categorised_versions(isolated) if i == "p2"]) == 2, 60,
               "the changed product", worker)
    ids = [i for i, _ in categorised_versions(isolated)]
    assert ids.count("p1") == 1, "sent three times unchanged, classified once"
    assert "Dress" in es_ids(es, isolated.es_index_products)["p2"]["title"]


def test_a_promoted_model_is_used_mid_stream_without_skipping(isolated, workers, tmp_path):
    ensure_topics(isolated)
    worker = workers(isolated, PRODCAT_MODEL_CHECK_INTERVAL_S="0.5")
    es = Elasticsearch(**isolated.es_client_kwargs())
    publish(isolated, [product(i) for i in range(300)])
    wait_until(lambda: len(es_ids(es, isolated.es_index_products)) == 300, 120, "first 300", worker)
    old = {doc["model_version"] for doc in es_ids(es, isolated.es_index_products).values()}

    promoted = tmp_path / "rules-v2"
    promoted.mkdir()
    (promoted / "rules.yaml").write_text((DATA / "demo_rules.yaml").read_text())
    (promoted / "taxonomy.json").write_text((DATA / "demo_taxonomy.json").read_text())
    announce(isolated, Announcement(version="rules-v2", location=str(promoted), kind="rules"))
    time.sleep(3)
    publish(isolated, [product(i) for i in range(300, 600)])
    docs = wait_until(lambda: (d := es_ids(es, isolated.es_index_products)) and len(d) == 600 and d, 120,
                      "all 600", worker)
    assert len(old) == 1 and "rules-v2" not in old
    assert {docs[f"p{i}"]["model_version"] for i in range(300, 600)} == {"rules-v2"}
    assert {docs[f"p{i}"]["model_version"] for i in range(300)} == old, "nothing re-written"


def test_elasticsearch_outage_loses_nothing_and_lag_metric_matches_broker(isolated, workers):
    ensure_topics(isolated)
    settings = isolated
    port = settings.web_port
    worker = workers(settings)
    es = Elasticsearch(**settings.es_client_kwargs())
    publish(settings, [product(i) for i in range(200)])
    wait_until(lambda: len(es_ids(es, settings.es_index_products)) == 200, 120, "first 200", worker)

    elastic = Stack(settings, only=["elasticsearch"])
    elastic.down()
    try:
        t0 = time.monotonic()
        publish(settings, [product(i) for i in range(200, 700)])
        time.sleep(5)
        # lag stands still while the worker retries: /metrics and the broker must agree exactly
        metrics = scrape(port)
        broker = consumer_lag(settings, settings.consumer_group, [settings.topic_raw])
        assert sum(r.lag for r in broker) > 0
        for row in broker:
            assert metrics[("prodcat_consumer_lag", f'partition="{row.partition}",topic="{row.topic}"')] == row.lag
        verdict = health(port)
        assert (verdict["ready"], verdict["elasticsearch"], verdict["kafka"], verdict["redis"]) == (False, False,
                                                                                                   True, True)
        assert "elasticsearch" in verdict["waiting"], verdict  # the stage waiting, and why
        time.sleep(max(0.0, 20 - (time.monotonic() - t0)))
        assert worker.proc.poll() is None, "the worker survives the outage"
    finally:
        elastic.up()
    docs = wait_until(lambda: (d := es_ids(es, settings.es_index_products)) and len(d) == 700 and d, 180,
                      "all 700 after the outage", worker)
    assert set(docs) == {f"p{i}" for i in range(700)}
    wait_until(lambda: sum(r.lag for r in consumer_lag(settings, settings.consumer_group,
                                                         [settings.topic_raw])) == 0, 60, "lag drained")
    wait_until(lambda: health(port)["ready"], 60, "the worker to report ready again", worker)


def test_two_workers_share_the_partitions(isolated, workers):
    ensure_topics(isolated)
    ports = (isolated.web_port, free_port())
    started = [workers(isolated.model_copy(update={"web_port": p})) for p in ports]
    es = Elasticsearch(**isolated.es_client_kwargs())
    admin = AdminClient(isolated.kafka_client_config())

    def members() -> int:
        group = admin.describe_consumer_groups([isolated.consumer_group])[isolated.consumer_group].result()
        return len(group.members) if str(group.state).endswith("STABLE") else 0

    wait_until(lambda: members() == 2, 120, "both workers in the group", started[0])
    publish(isolated, [product(i) for i in range(2000)])
    wait_until(lambda: len(es_ids(es, isolated.es_index_products)) == 2000, 180, "2000 products", started[0])
    consumed = [scrape(p)[("prodcat_events_in_total", f'topic="{isolated.topic_raw}"')] for p in ports]
    assert all(c > 0 for c in consumed), consumed
    assert sum(consumed) == 2000, "each event consumed by exactly one worker"


def small_topic(settings, topic: str) -> None:
    """Create ``topic`` so that it accepts no message longer than 64 bytes."""
    admin = AdminClient(settings.kafka_client_config())
    small = NewTopic(topic, num_partitions=settings.topic_partitions, replication_factor=settings.topic_replication,
                     config={"max.message.bytes": "64"})
    admin.create_topics([small])[topic].result(30)


def test_a_refused_dead_letter_stops_the_worker_and_acks_nothing(isolated, workers) -> None:
    """Acking an event whose dead letter the broker refused would lose it: the worker stops at once,
    even when no further events arrive, and leaves the batch unacked so it replays."""
    small_topic(isolated, isolated.topic_deadletter)
    worker = workers(isolated)
    publish(isolated, [(f"b{i}".encode(), b"{not json " + b"x" * 100) for i in range(5)])
    deadline = time.monotonic() + 120
    while worker.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert worker.proc.returncode is not None, f"the worker kept running:\n{worker.log_tail()}"
    assert worker.proc.returncode != 0
    assert "DeadLetterRefused" in worker.log_path.read_text(errors="replace"), worker.log_tail()
    lag = consumer_lag(isolated, isolated.consumer_group, [isolated.topic_raw])
    assert sum(row.lag for row in lag) == 5


def test_an_output_the_broker_refuses_is_dead_lettered_and_the_partition_goes_on(isolated, workers) -> None:
    small_topic(isolated, isolated.topic_categorised)  # every categorised message is refused
    worker = workers(isolated)
    publish(isolated, [product(i) for i in range(5)])
    wait_until(lambda: sum(r.lag for r in consumer_lag(isolated, isolated.consumer_group,
                                                       [isolated.topic_raw])) == 0, 120, "lag drained", worker)
    dead = [DeadLetter.from_message(m.key(), m.value(), m.headers()) for m in drain(isolated, isolated.topic_deadletter)]
    assert sorted(d.key for d in dead) == [f"p{i}".encode() for i in range(5)]
    assert {d.stage for d in dead} == {"kafka"} and all("too large" in d.reason.lower() for d in dead)
    assert worker.proc.poll() is None


def test_worker_pages_refuse_foreign_hosts_and_need_a_token_off_loopback(isolated, workers) -> None:
    worker = workers(isolated)
    port = isolated.web_port
    def ready() -> bool:
        try:
            return health(port)["ready"]
        except urllib.error.URLError:  # not listening yet
            return False

    wait_until(ready, 120, "the worker to be ready", worker)
    # DNS rebinding: a page of evil.example that resolved its name to 127.0.0.1
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={"Host": f"evil.example:{port}"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 403

    exposed = workers(isolated.model_copy(update={"web_host": "0.0.0.0", "web_port": free_port(),
                                                   "consumer_group": f"{isolated.consumer_group}-exposed"}))
    assert exposed.proc.wait(120) != 0, "a worker open to the network without a token must not start"
    assert "PRODCAT_WEB_TOKEN" in exposed.log_path.read_text(errors="replace")
