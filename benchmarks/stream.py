"""Stream throughput and latency on the real local stack, one worker, in one run.

    .venv/bin/python benchmarks/stream.py [--modes passthrough,rules,text,images] [--model DIR]
        [--events 10000] [--image-events 2000] [--repeats 3]

Modes (each: fresh topics and index, one `prodcat worker` process):
  passthrough  Kafka -> parse -> Elasticsearch bulk, no categoriser work (an empty rule set)
  rules        the legacy rules (generated from the Flipkart tree)
  text         the model ensemble (artifact DIR, announced on models.updates), no images
  images       the model ensemble + fetch/embed/Milvus for Myntra photos served from local files
For each: maximum throughput (a backlog of --events drained, --repeats times: the median is
reported), then p50/p99 end-to-end latency (producer timestamp of the raw event -> producer
timestamp of its products.categorised message) at a fixed offered load of half that median, the
worker's peak RSS and its time per stage (/metrics). The modes alternate within each repeat, so
slow phases of the shared machine hit every mode alike.
Writes benchmarks/results/stream.md and stream.png.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import redis  # noqa: E402
from confluent_kafka import Consumer, Producer  # noqa: E402
from elasticsearch import ApiError, Elasticsearch  # noqa: E402

from embedder.cache import VectorCache  # noqa: E402
from prodcat.catalogue import add_noise, read_catalogue, true_category_path  # noqa: E402
from prodcat.feed import event_key, publish  # noqa: E402
from prodcat.record import parse_record  # noqa: E402
from prodcat.rules import generate_rules  # noqa: E402
from prodcat.settings import Settings  # noqa: E402
from prodcat.stack import Stack  # noqa: E402
from prodcat.taxonomy import Taxonomy  # noqa: E402
from streams.model_updates import Announcement, announce  # noqa: E402
from streams.topics import ensure_topics  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT.parent / "shared" / "datasets"
STAGES = ("parse", "dedup", "embed", "model", "documents", "elasticsearch", "milvus", "kafka")


def fresh(base: Settings, tmp: Path, **update) -> Settings:
    tag = uuid.uuid4().hex[:8]
    return base.model_copy(update={
        "topic_raw": f"bench-{tag}.raw", "topic_categorised": f"bench-{tag}.cat", "topic_deadletter": f"bench-{tag}.dlq",
        "topic_label_requests": f"bench-{tag}.lr", "topic_labels": f"bench-{tag}.labels",
        "topic_model_updates": f"bench-{tag}.models", "consumer_group": f"bench-{tag}",
        "es_index_products": f"bench-{tag}", "es_index_labels": f"bench-{tag}-labels",
        "milvus_uri": str(tmp / f"milvus-{tag}" / "bench.db"), **update})


def indexed(es: Elasticsearch, index: str) -> int:
    try:
        return es.count(index=index)["count"]
    except ApiError:
        return 0


class Worker:
    """One `prodcat worker` process with the benchmark's settings."""

    def __init__(self, settings: Settings, env: dict[str, str], log: Path) -> None:
        self.settings = settings
        self.proc = subprocess.Popen([sys.executable, "-m", "prodcat", "worker", "--loglevel", "warning"],
                                     env={**os.environ, **settings.to_env(), **env}, cwd=ROOT,
                                     stdout=log.open("ab"), stderr=subprocess.STDOUT)

    def get(self, path: str) -> str:
        return urllib.request.urlopen(f"http://127.0.0.1:{self.settings.web_port}{path}", timeout=30).read().decode()

    def wait_ready(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"worker exited with {self.proc.returncode}")
            try:
                if json.loads(self.get("/health"))["ready"]:
                    return
            except Exception:  # noqa: BLE001 - not up yet
                pass
            time.sleep(0.5)
        raise SystemExit("worker not ready in time")

    def stage_seconds(self) -> dict[str, float]:
        sums = {}
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


def throughput(base: Settings, tmp: Path, events: list, env: dict, announce_model: Announcement | None) -> dict:
    settings = fresh(base, tmp)
    forget_vectors(settings)
    ensure_topics(settings)
    if announce_model:
        announce(settings, announce_model)
    expected = len({k for k, _ in events})
    publish(settings, events)
    es = Elasticsearch(**settings.es_client_kwargs())
    worker = Worker(settings, env, tmp / "worker.log")
    start, samples = time.monotonic(), []
    try:
        while (count := indexed(es, settings.es_index_products)) < expected:
            if worker.proc.poll() is not None:
                raise SystemExit(f"worker exited; see {tmp / 'worker.log'}")
            samples.append((time.monotonic() - start, count))
            time.sleep(0.25)
        samples.append((time.monotonic() - start, count))
        stages = worker.stage_seconds()
        rss = worker.peak_rss_mb()
    finally:
        worker.stop()
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


def latency(base: Settings, tmp: Path, events: list, env: dict, rate: float, seconds: float,
            announce_model: Announcement | None) -> dict:
    settings = fresh(base, tmp)
    forget_vectors(settings)
    ensure_topics(settings)
    if announce_model:
        announce(settings, announce_model)
    worker = Worker(settings, env, tmp / "worker.log")
    try:
        worker.wait_ready()
        time.sleep(3)  # partitions assigned
        producer = Producer({**settings.kafka_client_config(), "linger.ms": 5})
        n = min(len(events), int(rate * seconds))
        sent, t0 = {}, time.monotonic()
        for i, (key, value) in enumerate(events[:n]):
            while time.monotonic() < t0 + i / rate:
                time.sleep(0.001)
            producer.produce(settings.topic_raw, key=key, value=value)
            producer.poll(0)
            sent[key.decode()] = None
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
    rows = list(read_catalogue(DATASETS / "flipkart" / "products_20k_name_tree.csv", "flipkart-names"))[:n]
    taxonomy = Taxonomy.from_paths(filter(None, (true_category_path(parse_record(r)) for r in rows)), max_depth=4)
    rng = random.Random(0)
    return [(event_key(r), json.dumps(add_noise(r, rng, 0.3)).encode()) for r in rows], taxonomy


def myntra_events(n: int) -> list:
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
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "stream")
    args = parser.parse_args()
    modes = args.modes.split(",")
    if {"text", "images"} & set(modes) and not args.model:
        raise SystemExit("modes text/images need --model DIR (a trained artifact: `prodcat train ...`)")
    if not DATASETS.is_dir():
        raise SystemExit(f"needs the shared datasets at {DATASETS}")

    base = Settings(embed_images=False)
    owned = [s.name for s in Stack(base).status() if s.pid is None]  # stop only what this run starts
    Stack(base).up()
    try:
        run(args, base, modes)
    finally:
        if owned:
            Stack(base, only=owned).down()


def run(args: argparse.Namespace, base: Settings, modes: list[str]) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="prodcat-bench-"))
    flipkart, taxonomy = flipkart_events(args.events)
    (tmp / "taxonomy.json").write_text(taxonomy.to_json())
    (tmp / "empty.yaml").write_text("[]\n")
    generate_rules(taxonomy).save(tmp / "rules.yaml")
    model = Announcement(version=json.loads((args.model / "manifest.json").read_text())["version"],
                         location=str(args.model), kind="model") if args.model else None
    plans = {
        "passthrough": (flipkart, {"PRODCAT_RULES_PATH": str(tmp / "empty.yaml")}, None),
        "rules": (flipkart, {"PRODCAT_RULES_PATH": str(tmp / "rules.yaml")}, None),
        "text": (flipkart, {"PRODCAT_RULES_PATH": str(tmp / "rules.yaml")}, model),  # rule labels stored too
        "images": (myntra_events(args.image_events),
                   {"PRODCAT_RULES_PATH": str(tmp / "rules.yaml"), "PRODCAT_EMBED_IMAGES": "true",
                    "PRODCAT_IMAGE_ALLOW_LOCAL_FILES": "true"}, model),
    }
    runs: dict[str, list[dict]] = {mode: [] for mode in modes}
    for repeat in range(args.repeats):
        for mode in modes:
            events, env, ann = plans[mode]
            env = {"PRODCAT_TAXONOMY_PATH": str(tmp / "taxonomy.json"), **env}
            runs[mode].append(throughput(base, tmp, events, env, ann))
            print(f"[{mode}] run {repeat + 1}: {runs[mode][-1]['eps']:.0f} events/s", flush=True)
    results = {}
    for mode in modes:
        events, env, ann = plans[mode]
        env = {"PRODCAT_TAXONOMY_PATH": str(tmp / "taxonomy.json"), **env}
        eps = [r["eps"] for r in runs[mode]]
        median = sorted(runs[mode], key=lambda r: r["eps"])[len(eps) // 2]  # its stage times and samples
        print(f"[{mode}] median {median['eps']:.0f} events/s; latency at half load ...", flush=True)
        lat = latency(base, tmp, events, env, median["eps"] / 2, args.latency_seconds, ann)
        results[mode] = {**median, "all_eps": eps, "rss_mb": max(r["rss_mb"] for r in runs[mode]),
                         "events": len(events), "latency": lat}

    fig, ax = plt.subplots(figsize=(7, 4))
    for mode, r in results.items():
        ax.plot([t for t, _ in r["samples"]], [c for _, c in r["samples"]], label=mode)
    ax.set(xlabel="seconds since worker start", ylabel="products in Elasticsearch", title="Backlog drained by one worker")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out.with_suffix(".png"), dpi=100)
    rows = "\n".join(
        f"| {m} | {r['events']} | **{r['eps']:.0f}** ({min(r['all_eps']):.0f}–{max(r['all_eps']):.0f}) | {r['latency']['rate']:.0f} | {r['latency']['p50_ms']:.0f} | "
        f"{r['latency']['p99_ms']:.0f} | {r['latency']['done']}/{r['latency']['sent']} | "
        f"{max(r['rss_mb'], r['latency']['rss_mb']):.0f} | "
        + " | ".join(f"{r['ms_per_event'].get(s, 0):.2f}" for s in STAGES) + " |" for m, r in results.items())
    ratio = ""
    if "passthrough" in results and "text" in results:
        ratio = (f"\nText pipeline / passthrough ceiling, medians of the same run: "
                 f"**{results['text']['eps'] / results['passthrough']['eps']:.2f}** (goal >= 0.6).\n")
    args.out.with_suffix(".md").write_text(f"""# Streaming throughput and latency

Command: `.venv/bin/python benchmarks/stream.py {' '.join(sys.argv[1:])}`

One worker (batch {base.batch_size}, within {base.batch_within_s}s) on this 2-core machine, sharing it
with Kafka {base.kafka_version} and Elasticsearch {base.es_version} run as local processes. Text modes
replay Flipkart products (30% dirtied); the image mode replays Myntra products with their photos
read from local files (fetch, EfficientNet-Lite0 embedding, Redis vector cache, Milvus Lite upsert;
the model is the text model, so the vectors go to Milvus, not into the decision). The vector cache
is emptied before every run: each photo is embedded (cold cache; the catalogue's repeated photos
still hit it). Throughput = a
backlog drained (from the first batch's output to the last, by the products.categorised
timestamps), median of {args.repeats} runs (range in brackets);
latency = producer timestamp of the raw event to that of its products.categorised message, at a
fixed offered load of half the median maximum. Stage times come from the worker's
/metrics histograms of the median run.

| mode | events | events/s (max) | offered load (events/s) | p50 ms | p99 ms | delivered | peak RSS MB | {' | '.join(f'{s} ms/event' for s in STAGES)} |
|---|---|---|---|---|---|---|---|{'---|' * len(STAGES)}
{rows}
{ratio}
![backlog drained](stream.png)
""")
    print(args.out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
