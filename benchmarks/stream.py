"""Stream throughput and latency on the real local stack, measured in one run.

    .venv/bin/python benchmarks/stream.py [--modes passthrough,rules,text,images] [--model DIR]
        [--events 10000] [--image-events 2000] [--repeats 3] [--scale-modes passthrough,text]

Modes (each: fresh topics and index, one `prodcat worker` process):
  passthrough  Kafka -> parse -> Elasticsearch bulk, no categoriser work (an empty rule set)
  rules        the legacy rules (generated from the Flipkart tree)
  text         the model ensemble (artifact DIR, announced on models.updates), no images
  images       the model ensemble + fetch/embed/Milvus for Myntra photos served from local files
and, always, the no-Faust limit (benchmarks/stream_limit.py: a plain confluent-kafka consumer ->
orjson -> Elasticsearch bulk -> one output message per event, on the Flipkart events), which every
mode's throughput is divided by.
For each: maximum throughput (a backlog of --events drained, --repeats times: the median is
reported), then p50/p99 end-to-end latency (producer timestamp of the raw event -> producer
timestamp of its products.categorised message) at a fixed offered load of half that median, the
worker's peak RSS and its time per stage (/metrics). Then, for --scale-modes, one vs two workers
in one consumer group on a topic of --scale-partitions partitions. Everything alternates within
each repeat, so slow phases of the shared machine hit every mode alike.
Writes benchmarks/results/stream.md and stream.png (benchmarks/stream_report.py).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import redis
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient
from elasticsearch import ApiError, Elasticsearch
from stream_report import write_report

from embedder.cache import VectorCache
from prodcat.catalogue import add_noise, read_catalogue, true_category_path
from prodcat.feed import event_key, publish
from prodcat.record import parse_record
from prodcat.rules import generate_rules
from prodcat.settings import Settings
from prodcat.stack import Stack
from prodcat.taxonomy import Taxonomy
from runtime.model_updates import Announcement, announce
from streams.topics import ensure_topics

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT.parent / "shared" / "datasets"
WORKER = [sys.executable, "-m", "prodcat", "worker", "--loglevel", "warning"]
LIMIT = [sys.executable, str(ROOT / "benchmarks" / "stream_limit.py")]  # the no-Faust loop


@dataclass(frozen=True)
class Plan:
    """What one mode replays and how its processes are configured."""

    events: list[tuple[bytes | None, bytes]]
    env: dict[str, str]
    model: Announcement | None = None
    command: list[str] = field(default_factory=lambda: WORKER)


def fresh(base: Settings, tmp: Path, **update) -> Settings:
    """The base settings with topics, group, indices and Milvus file of their own (one run's)."""
    tag = uuid.uuid4().hex[:8]
    return base.model_copy(update={
        "topic_raw": f"bench-{tag}.raw", "topic_categorised": f"bench-{tag}.cat", "topic_deadletter": f"bench-{tag}.dlq",
        "topic_label_requests": f"bench-{tag}.lr", "topic_labels": f"bench-{tag}.labels",
        "topic_model_updates": f"bench-{tag}.models", "consumer_group": f"bench-{tag}",
        "es_index_products": f"bench-{tag}", "es_index_labels": f"bench-{tag}-labels",
        "milvus_uri": str(tmp / f"milvus-{tag}" / "bench.db"), **update})


def indexed(es: Elasticsearch, index: str) -> int:
    """Documents in ``index`` (0 while it does not exist yet)."""
    try:
        return es.count(index=index)["count"]
    except ApiError:
        return 0


class Worker:
    """One stream process (`prodcat worker`, or the no-Faust loop) with the benchmark's settings."""

    def __init__(self, settings: Settings, env: dict[str, str], log: Path, command: list[str] = WORKER) -> None:
        self.settings = settings
        self.faust = command == WORKER  # only the worker has /health and /metrics
        self.proc = subprocess.Popen(command, env={**os.environ, **settings.to_env(), **env}, cwd=ROOT,
                                     stdout=log.open("ab"), stderr=subprocess.STDOUT)

    def get(self, path: str) -> str:
        return urllib.request.urlopen(f"http://127.0.0.1:{self.settings.web_port}{path}", timeout=30).read().decode()

    def wait_ready(self, timeout: float = 300) -> None:
        """Until /health says ready (the no-Faust loop: until it runs)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"worker exited with {self.proc.returncode}")
            if not self.faust:
                return
            try:
                if json.loads(self.get("/health"))["ready"]:
                    return
            except (OSError, ValueError, KeyError):  # not up yet (refused, 503, half-written answer)
                pass
            time.sleep(0.5)
        raise SystemExit("worker not ready in time")

    def stage_seconds(self) -> dict[str, float]:
        """Seconds spent per stage so far, from the worker's /metrics (none for the no-Faust loop)."""
        sums: dict[str, float] = {}
        if not self.faust:
            return sums
        for line in self.get("/metrics").splitlines():
            if line.startswith("prodcat_stage_seconds_sum"):
                stage = line.split('stage="')[1].split('"')[0]
                sums[stage] = float(line.rsplit(" ", 1)[1])
        return sums

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(120)


def forget_vectors(settings: Settings) -> int:
    """Empty the image vector cache, so every images run embeds every photo (the cold case)."""
    client = redis.Redis.from_url(settings.redis_url, **settings.redis_kwargs())
    keys = list(client.scan_iter(f"{VectorCache(client).namespace}:*", count=1000))
    for i in range(0, len(keys), 1000):
        client.delete(*keys[i:i + 1000])
    return len(keys)


def wait_group(settings: Settings, members: int, timeout: float = 120) -> None:
    """Until the consumer group is stable with ``members`` members sharing every raw partition."""
    admin = AdminClient({**settings.kafka_client_config(), "log_level": 0})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            group = admin.describe_consumer_groups([settings.consumer_group])[settings.consumer_group].result(10)
        except KafkaException:  # coordinator not known yet
            time.sleep(0.5)
            continue
        held = [sum(tp.topic == settings.topic_raw for tp in m.assignment.topic_partitions) for m in group.members]
        if (str(group.state).endswith("STABLE") and len(held) == members and all(held)
                and sum(held) == settings.topic_partitions):
            return
        time.sleep(0.5)
    raise SystemExit(f"consumer group {settings.consumer_group} did not settle on {members} members in time")


def throughput(base: Settings, tmp: Path, plan: Plan, *, workers: int = 1, partitions: int | None = None) -> dict:
    """Events/s of draining a backlog of ``plan.events``, timed on the products.categorised timestamps.

    One process: the backlog is published first and the process started on it. Scaling runs
    (``partitions`` given): ``workers`` processes are started first and the backlog published once
    the group is stable, so no rebalance falls inside the timing.
    """
    settings = fresh(base, tmp, **({"topic_partitions": partitions} if partitions else {}))
    forget_vectors(settings)
    ensure_topics(settings)
    if plan.model:
        announce(settings, plan.model)
    expected = len({k for k, _ in plan.events})
    es = Elasticsearch(**settings.es_client_kwargs())
    procs: list[Worker] = []

    def start() -> None:
        for i in range(workers):  # each its own web port; one group, so they share the partitions
            procs.append(Worker(settings.model_copy(update={"web_port": settings.web_port + i}), plan.env,
                                tmp / "worker.log", plan.command))

    if partitions:
        start()
        for proc in procs:
            proc.wait_ready()
        wait_group(settings, workers)
        publish(settings, plan.events)
    else:
        publish(settings, plan.events)
        start()
    t0, samples = time.monotonic(), []
    try:
        while (count := indexed(es, settings.es_index_products)) < expected:
            if any(p.proc.poll() is not None for p in procs):
                raise SystemExit(f"worker exited; see {tmp / 'worker.log'}")
            samples.append((time.monotonic() - t0, count))
            time.sleep(0.25)
        samples.append((time.monotonic() - t0, count))
        stages: dict[str, float] = {}
        for proc in procs:
            for stage, seconds in proc.stage_seconds().items():
                stages[stage] = stages.get(stage, 0.0) + seconds
        rss = max(p.peak_rss_mb() for p in procs)
    finally:
        for proc in procs:
            proc.stop()
        es.indices.delete(index=settings.es_index_products, ignore_unavailable=True)
    # Timed on the products.categorised messages' timestamps (ms), not on Elasticsearch counts,
    # which move in refresh-interval steps of 1 s. The first batch is left out: start-up and model
    # loading are not throughput.
    stamps = sorted(produced_at(settings, settings.topic_categorised, expected).values())
    skip = min(base.batch_size, len(stamps) // 2)
    if len(stamps) < expected or stamps[-1] <= stamps[skip]:
        raise SystemExit(f"{len(stamps)} of {expected} outputs found, or all in one batch: give the mode more events")
    return {"eps": 1000 * (len(stamps) - 1 - skip) / (stamps[-1] - stamps[skip]), "samples": samples, "rss_mb": rss,
            "ms_per_event": {k: 1000 * v / expected for k, v in stages.items()}}

def median_run(runs: list[dict]) -> dict:
    """The run with the median events/s (the upper one of an even count), with its own details."""
    return sorted(runs, key=lambda r: r["eps"])[len(runs) // 2]


def produced_at(settings: Settings, topic: str, n: int) -> dict[str, int]:
    """Producer timestamp (ms) of each key's first message on ``topic``, reading until ``n`` keys or 10 s idle."""
    consumer = Consumer({**settings.kafka_client_config(), "group.id": f"bench-read-{uuid.uuid4().hex[:8]}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    out: dict[str, int] = {}
    idle = time.monotonic()
    while time.monotonic() - idle < 10 and len(out) < n:
        msg = consumer.poll(0.5)
        if msg is not None and not msg.error():
            out.setdefault(msg.key().decode(), msg.timestamp()[1])
            idle = time.monotonic()
    consumer.close()
    return out


def latency(base: Settings, tmp: Path, plan: Plan, rate: float, seconds: float) -> dict:
    """p50/p99 end-to-end latency of one worker at a fixed offered load of ``rate`` events/s."""
    settings = fresh(base, tmp)
    forget_vectors(settings)
    ensure_topics(settings)
    if plan.model:
        announce(settings, plan.model)
    worker = Worker(settings, plan.env, tmp / "worker.log", plan.command)
    try:
        worker.wait_ready()
        time.sleep(3)  # partitions assigned
        producer = Producer({**settings.kafka_client_config(), "linger.ms": 5})
        n = min(len(plan.events), int(rate * seconds))
        t0 = time.monotonic()
        for i, (key, value) in enumerate(plan.events[:n]):
            while time.monotonic() < t0 + i / rate:
                time.sleep(0.001)
            producer.produce(settings.topic_raw, key=key, value=value)
            producer.poll(0)
        producer.flush(60)
        raw_ts = produced_at(settings, settings.topic_raw, n)
        out_ts = produced_at(settings, settings.topic_categorised, len(raw_ts))
        rss = worker.peak_rss_mb()
    finally:
        worker.stop()
    lat = sorted(out_ts[k] - raw_ts[k] for k in out_ts if k in raw_ts)
    return {"rate": rate, "sent": n, "done": len(lat), "rss_mb": rss,
            "p50_ms": statistics.median(lat), "p99_ms": lat[min(len(lat) - 1, int(0.99 * len(lat)))]}


def flipkart_events(n: int) -> tuple[list, Taxonomy]:
    """The first ``n`` Flipkart products, 30% dirtied, as (key, value) events, and their category tree."""
    rows = list(read_catalogue(DATASETS / "flipkart" / "products_20k_name_tree.csv", "flipkart-names"))[:n]
    taxonomy = Taxonomy.from_paths(filter(None, (true_category_path(parse_record(r)) for r in rows)), max_depth=4)
    rng = random.Random(0)
    return [(event_key(r), json.dumps(add_noise(r, rng, 0.3)).encode()) for r in rows], taxonomy


def myntra_events(n: int) -> list:
    """The first ``n`` Myntra products with photos, as (key, value) events."""
    rows = list(read_catalogue(DATASETS / "myntra" / "images.csv", "myntra-images"))[:n]
    return [(event_key(r), json.dumps(r).encode()) for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default="passthrough,rules,text,images")
    parser.add_argument("--model", type=Path, help="model artifact directory (modes text, images)")
    parser.add_argument("--events", type=int, default=10000)
    parser.add_argument("--image-events", type=int, default=2000, help="events of the images mode")
    parser.add_argument("--repeats", type=int, default=3, help="throughput runs per mode (median reported)")
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    parser.add_argument("--scale-modes", default="passthrough,text",
                        help="modes measured with 1 and 2 workers in one group ('' for none)")
    parser.add_argument("--scale-partitions", type=int, default=8, help="partitions of the scaling runs' topic")
    parser.add_argument("--note", default="", help="a sentence for the report (e.g. who else used the machine)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "stream")
    args = parser.parse_args()
    modes = args.modes.split(",")
    scale_modes = [m for m in args.scale_modes.split(",") if m]
    if {"text", "images"} & set(modes + scale_modes) and not args.model:
        raise SystemExit("modes text/images need --model DIR (a trained artifact: `prodcat train ...`)")
    if not DATASETS.is_dir():
        raise SystemExit(f"needs the shared datasets at {DATASETS}")

    base = Settings(embed_images=False)
    owned = [s.name for s in Stack(base).status() if s.pid is None]  # stop only what this run starts
    Stack(base).up()
    try:
        run(args, base, modes, scale_modes)
    finally:
        if owned:
            Stack(base, only=owned).down()


def run(args: argparse.Namespace, base: Settings, modes: list[str], scale_modes: list[str]) -> None:
    """Every measurement, alternating modes within each repeat; then the report."""
    tmp = Path(tempfile.mkdtemp(prefix="prodcat-bench-"))
    flipkart, taxonomy = flipkart_events(args.events)
    (tmp / "taxonomy.json").write_text(taxonomy.to_json())
    (tmp / "empty.yaml").write_text("[]\n")
    generate_rules(taxonomy).save(tmp / "rules.yaml")
    model = Announcement(version=json.loads((args.model / "manifest.json").read_text())["version"],
                         location=str(args.model), kind="model") if args.model else None
    tree = {"PRODCAT_TAXONOMY_PATH": str(tmp / "taxonomy.json")}
    rules = {**tree, "PRODCAT_RULES_PATH": str(tmp / "rules.yaml")}
    plans = {
        "limit": Plan(flipkart, tree, command=LIMIT),
        "passthrough": Plan(flipkart, {**tree, "PRODCAT_RULES_PATH": str(tmp / "empty.yaml")}),
        "rules": Plan(flipkart, rules),
        "text": Plan(flipkart, rules, model),  # rule labels stored too
        "images": Plan(myntra_events(args.image_events) if "images" in modes + scale_modes else [],
                       {**rules, "PRODCAT_EMBED_IMAGES": "true", "PRODCAT_IMAGE_ALLOW_LOCAL_FILES": "true"}, model),
    }
    runs: dict[str, list[dict]] = {mode: [] for mode in ["limit", *modes]}
    scaling: dict[str, dict[int, list[dict]]] = {mode: {1: [], 2: []} for mode in scale_modes}
    loads: list[float] = []  # 1-min load average before each run: how busy the shared machine was
    for repeat in range(args.repeats):
        for mode in runs:
            loads.append(os.getloadavg()[0])
            runs[mode].append(throughput(base, tmp, plans[mode]))
            print(f"[{mode}] run {repeat + 1}: {runs[mode][-1]['eps']:.0f} events/s", flush=True)
        for mode in scale_modes:
            for workers in (1, 2):
                loads.append(os.getloadavg()[0])
                scaling[mode][workers].append(throughput(base, tmp, plans[mode], workers=workers,
                                                         partitions=args.scale_partitions))
                print(f"[{mode}] {workers} worker(s), {args.scale_partitions} partitions, run {repeat + 1}: "
                      f"{scaling[mode][workers][-1]['eps']:.0f} events/s", flush=True)
    results = {}
    for mode, mode_runs in runs.items():
        median = median_run(mode_runs)  # its stage times and samples
        results[mode] = {**median, "all_eps": [r["eps"] for r in mode_runs],
                         "rss_mb": max(r["rss_mb"] for r in mode_runs), "events": len(plans[mode].events)}
        if mode != "limit":  # the limit is a ceiling, not a service: no latency of its own
            print(f"[{mode}] median {median['eps']:.0f} events/s; latency at half load ...", flush=True)
            results[mode]["latency"] = latency(base, tmp, plans[mode], median["eps"] / 2, args.latency_seconds)
    scale = {mode: {n: {**median_run(rs), "all_eps": [r["eps"] for r in rs], "rss_mb": max(r["rss_mb"] for r in rs)}
                    for n, rs in by_n.items()} for mode, by_n in scaling.items()}
    write_report(args.out, command=shlex.join(sys.argv[1:]), base=base, repeats=args.repeats, results=results,
                 scaling=scale, partitions=args.scale_partitions, loads=loads, note=args.note)
    print(args.out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
