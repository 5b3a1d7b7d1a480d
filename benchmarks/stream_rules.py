"""Throughput of the rule-based stream on the real local stack (Kafka -> worker -> Elasticsearch).

    .venv/bin/python benchmarks/stream_rules.py [--events 20000] [--repeat 3]

Starts the stack if needed (`prodcat stack up` settings), derives a taxonomy and rules from the
shared Flipkart 20k file, publishes the events to a fresh topic, starts one worker and samples
the Elasticsearch document count. Writes benchmarks/results/stream_rules.md and .png.
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
import uuid
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from elasticsearch import ApiError, Elasticsearch  # noqa: E402

from prodcat.catalogue import add_noise, read_catalogue, true_category_path  # noqa: E402
from prodcat.feed import event_key, publish  # noqa: E402
from prodcat.record import parse_record  # noqa: E402
from prodcat.rules import generate_rules  # noqa: E402
from prodcat.settings import Settings  # noqa: E402
from prodcat.stack import Stack  # noqa: E402
from prodcat.taxonomy import Taxonomy  # noqa: E402
from streams.topics import ensure_topics  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FLIPKART = ROOT.parent / "shared" / "datasets" / "flipkart" / "products_20k_name_tree.csv"


def indexed(es: Elasticsearch, index: str) -> int:
    """Documents searchable now; 0 while the worker has not created the index or its shard."""
    try:
        return es.count(index=index)["count"]
    except ApiError:
        return 0


def one_run(base: Settings, events: list, expected: int, env: dict[str, str], log: Path) -> dict:
    tag = uuid.uuid4().hex[:8]
    settings = base.model_copy(update={"topic_raw": f"bench-{tag}.raw", "topic_categorised": f"bench-{tag}.cat",
                                       "topic_deadletter": f"bench-{tag}.dlq", "consumer_group": f"bench-{tag}",
                                       "es_index_products": f"bench-{tag}"})
    ensure_topics(settings)
    t0 = time.monotonic()
    publish(settings, events)
    publish_s = time.monotonic() - t0
    es = Elasticsearch(**settings.es_client_kwargs())
    worker = subprocess.Popen([sys.executable, "-m", "prodcat", "worker", "--loglevel", "warning"],
                              env={**os.environ, **settings.to_env(), **env},
                              stdout=log.open("ab"), stderr=subprocess.STDOUT, cwd=ROOT)
    start, samples = time.monotonic(), []
    try:
        while True:
            if worker.poll() is not None:
                raise SystemExit(f"worker exited with {worker.returncode}; see {log}")
            count = indexed(es, settings.es_index_products)
            samples.append((time.monotonic() - start, count))
            if count >= expected:
                break
            if time.monotonic() - start > 900:
                raise SystemExit("timed out waiting for the worker")
            time.sleep(0.25)
    finally:
        worker.terminate()
        worker.wait(60)
        es.indices.delete(index=settings.es_index_products, ignore_unavailable=True)
    first = next(t for t, c in samples if c > 0)
    last = samples[-1][0]
    return {"publish_eps": len(events) / publish_s, "first_doc_s": first, "total_s": last,
            "steady_eps": expected / max(last - first, 1e-6), "samples": samples}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "stream_rules")
    args = parser.parse_args()
    if not FLIPKART.exists():
        raise SystemExit(f"needs the shared dataset at {FLIPKART}")

    settings = Settings()
    Stack(settings).up()
    records = list(read_catalogue(FLIPKART, "flipkart-names"))[: args.events]
    taxonomy = Taxonomy.from_paths(filter(None, (true_category_path(parse_record(r)) for r in records)), max_depth=4)
    tmp = Path(tempfile.mkdtemp())
    (tmp / "taxonomy.json").write_text(taxonomy.to_json())
    generate_rules(taxonomy).save(tmp / "rules.yaml")
    env = {"PRODCAT_TAXONOMY_PATH": str(tmp / "taxonomy.json"), "PRODCAT_RULES_PATH": str(tmp / "rules.yaml")}
    rng = random.Random(0)
    events = [(event_key(r), json.dumps(add_noise(r, rng, 0.3)).encode()) for r in records]
    expected = len({parse_record(v).id for _, v in events})

    runs = [one_run(settings, events, expected, env, tmp / "worker.log") for _ in range(args.repeat)]
    med = {k: statistics.median(r[k] for r in runs) for k in ("publish_eps", "first_doc_s", "total_s", "steady_eps")}

    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, run in enumerate(runs):
        ax.plot([t for t, _ in run["samples"]], [c for _, c in run["samples"]], label=f"run {i + 1}")
    ax.set(xlabel="seconds since worker start", ylabel="products in Elasticsearch",
           title=f"Rule-based stream, {expected} Flipkart products, 1 worker")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out.with_suffix(".png"), dpi=100)
    rows = "\n".join(f"| {i + 1} | {r['publish_eps']:.0f} | {r['first_doc_s']:.1f} | {r['total_s']:.1f} | "
                     f"{r['steady_eps']:.0f} |" for i, r in enumerate(runs))
    args.out.with_suffix(".md").write_text(f"""# Rule-based stream throughput

Command: `.venv/bin/python benchmarks/stream_rules.py --events {args.events} --repeat {args.repeat}`

{expected} distinct Flipkart products (30% dirtied like a real feed), {len(taxonomy)} categories
(depth <= 4), {len(generate_rules(taxonomy))} generated rules; one worker (Faust, batch
{settings.batch_size}), Kafka {settings.kafka_version} / Elasticsearch {settings.es_version} as local
processes on this 2-core machine, all sharing the two cores.

| run | publish events/s | worker start -> first doc (s) | start -> all indexed (s) | steady events/s (first -> last doc) |
|---|---|---|---|---|
{rows}
| **median** | {med['publish_eps']:.0f} | {med['first_doc_s']:.1f} | {med['total_s']:.1f} | **{med['steady_eps']:.0f}** |

![indexed over time](stream_rules.png)
""")
    print(args.out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
