"""The worker's Prometheus metrics, in a registry of its own (one per app, so tests can make many)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from prodcat.errors import Stage

STAGES = ("parse", "dedup", "fetch", "embed", "model", "elasticsearch", "milvus", "kafka")


class WorkerMetrics:
    """Counters, histograms and gauges an operator watches; exposition via ``generate_latest``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events_in = Counter("prodcat_events_in", "Events consumed", ["topic"], registry=r)
        self.events_out = Counter("prodcat_events_out", "Results written, by sink", ["sink"], registry=r)
        self.deadletters = Counter("prodcat_deadletters", "Events sent to the dead-letter topic", ["stage"],
                                   registry=r)
        self.label_requests = Counter("prodcat_labelling_requests", "Products sent for labelling", ["reason"],
                                      registry=r)
        self.skipped = Counter("prodcat_skipped_unchanged", "Products not re-classified (unchanged)", registry=r)
        self.batch_size = Histogram("prodcat_batch_size", "Events per micro-batch", registry=r,
                                    buckets=(1, 8, 32, 64, 128, 256, 512, 1024))
        self.stage_seconds = Histogram("prodcat_stage_seconds", "Time per batch in each stage", ["stage"],
                                       registry=r, buckets=(.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
        self.lag = Gauge("prodcat_consumer_lag", "End offset minus committed offset (from the broker)",
                         ["topic", "partition"], registry=r)
        self.model = Info("prodcat_model", "The model version in use", registry=r)
        # the error policy's Health: an alert needs a number, /health only answers whoever asks
        self.ready = Gauge("prodcat_ready", "1 when no stage is waiting out an outage, else 0", registry=r)
        self.waiting = Gauge("prodcat_waiting", "1 while the stage waits out an outage (retrying), else 0",
                             ["stage"], registry=r)
        self.set_health({})

    def set_health(self, waiting: Mapping[str, str]) -> None:
        """Mirror the policy's Health (``health.waiting``: stage -> reason): every stage gets a 0/1 series,
        so a rule sees a stage stop waiting, not a series disappear."""
        self.ready.set(0 if waiting else 1)
        for stage in [*Stage, *(s for s in waiting if s not in set(Stage))]:
            self.waiting.labels(str(stage)).set(1 if str(stage) in waiting else 0)

    @contextmanager
    def stage(self, name: str):
        """Time a stage of one batch: ``with metrics.stage("model"): ...``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.stage_seconds.labels(name).observe(time.perf_counter() - start)
