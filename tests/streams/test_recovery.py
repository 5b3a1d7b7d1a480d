"""Recovery after kill -9 on the real stack: the restarted worker consumes soon after it is healthy.

Regression for issue 11 item 8: a restarted worker was healthy in 6-8 s but consumed nothing for
51-54 s, until the killed member's consumer-group session (Faust's 60 s) expired.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest
from elasticsearch import Elasticsearch

from prodcat.feed import publish
from streams.lag import consumer_lag
from streams.topics import ensure_topics
from tests.helpers import health, wait_for_count

pytestmark = pytest.mark.integration


def product(i: int) -> tuple[bytes, bytes]:
    return f"p{i}".encode(), json.dumps({"id": f"p{i}", "title": f"Men's Slim Fit Casual Shirt {i}",
                                         "category": "Clothing > Men's Clothing > Shirts"}).encode()


def consumed(port: int, topic: str) -> float:
    """Events the worker on ``port`` has taken from ``topic`` (its /metrics counter; 0 before the first)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30).read().decode()
    prefix = f'prodcat_events_in_total{{topic="{topic}"}}'
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))


def ready(port: int) -> bool:
    try:
        return health(port)["ready"]
    except OSError:  # refused or reset: the web server is not up yet
        return False


def test_a_worker_restarted_after_sigkill_consumes_within_10_s_of_being_healthy(isolated, workers,
                                                                              record_property) -> None:
    """Kill -9 at a quiet, known point (all of the first 200 in Elasticsearch and committed, nothing else
    published), publish 200 more while no worker runs, restart with the default settings: from its first
    healthy /health to its first consumed event at most 10 s, and nothing lost."""
    ensure_topics(isolated)
    es = Elasticsearch(**isolated.es_client_kwargs())
    first = workers(isolated)
    publish(isolated, [product(i) for i in range(200)])
    assert wait_for_count(es, isolated.es_index_products, 200, timeout=120, worker=first) == 200
    deadline = time.monotonic() + 60
    while sum(r.lag for r in consumer_lag(isolated, isolated.consumer_group, [isolated.topic_raw])) > 0:
        assert time.monotonic() < deadline, "the first 200 were never committed"
        time.sleep(0.5)
    first.kill(9)  # the group still counts the dead member until its session expires
    publish(isolated, [product(i) for i in range(200, 400)])

    second, started = workers(isolated), time.monotonic()
    deadline = time.monotonic() + 120
    while not ready(isolated.web_port):
        assert second.proc.poll() is None and time.monotonic() < deadline, second.log_tail()
        time.sleep(0.1)
    healthy_at = time.monotonic()
    while consumed(isolated.web_port, isolated.topic_raw) == 0 and time.monotonic() - healthy_at < 30:
        assert second.proc.poll() is None, second.log_tail()
        time.sleep(0.2)
    waited = time.monotonic() - healthy_at
    record_property("seconds_to_healthy", round(healthy_at - started, 1))  # in --junitxml reports
    record_property("seconds_to_consume_after_healthy", round(waited, 1))
    assert waited <= 10, f"consumed nothing for {waited:.1f} s after /health was ready\n{second.log_tail()}"
    assert wait_for_count(es, isolated.es_index_products, 400, timeout=120, worker=second) == 400
