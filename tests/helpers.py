"""Helpers shared by the integration tests (not fixtures: plain functions)."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request

import pytest
from confluent_kafka import Consumer
from elasticsearch import ApiError, Elasticsearch


def free_port() -> int:
    """A TCP port nobody listens on now (for a worker's web server)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def drain(settings, topic: str, idle_s: float = 5.0) -> list:
    consumer = Consumer({**settings.kafka_client_config(), "group.id": f"drain-{time.time()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    messages, last = [], time.monotonic()
    while time.monotonic() - last < idle_s:
        msg = consumer.poll(0.5)
        if msg is None or msg.error():
            continue
        messages.append(msg)
        last = time.monotonic()
    consumer.close()
    return messages


def wait_for_count(es: Elasticsearch, index: str, target: int, timeout: float, worker=None) -> int:
    deadline, count = time.monotonic() + timeout, 0
    while time.monotonic() < deadline:
        if worker is not None and worker.proc.poll() is not None:
            pytest.fail(f"worker exited with {worker.proc.returncode}:\n{worker.log_tail()}")
        try:
            es.indices.refresh(index=index)
            count = es.count(index=index)["count"]
        except ApiError:  # the worker has not created the index (or its shard) yet
            count = 0
        if count >= target:
            return count
        time.sleep(0.5)
    return count


def health(port: int) -> dict:
    """/health's verdict: 200 when ready, 503 (with the same JSON) when not."""
    try:
        return json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=30).read())
    except urllib.error.HTTPError as err:
        assert err.code == 503
        return json.loads(err.read())


def implementations(cls: type) -> set[type]:
    """Concrete subclasses of ``cls`` defined in the project (test doubles left out)."""
    found = set()
    for sub in cls.__subclasses__():
        found |= implementations(sub)
        if not getattr(sub, "__abstractmethods__", None) and not sub.__module__.startswith("tests"):
            found.add(sub)
    return found
