# over 500 lines: one benchmark read top to bottom (events, kills and restarts, checks, report); its parts serve only this run
"""Recovery after kill -9: how soon a restarted worker consumes again, and what the crashes cost.

    .venv/bin/python benchmarks/recovery.py [--events 100000] [--versions 5] [--kills 10]
        [--compare-kills 3] [--compare-events 30000] [--out benchmarks/results]

Stack settings come from PRODCAT_* (use a stack of its own, e.g. PRODCAT_STATE_DIR=/tmp/recovery-stack
PRODCAT_KAFKA_BROKERS=127.0.0.1:58092 PRODCAT_ES_URL=http://127.0.0.1:58200
PRODCAT_REDIS_URL=redis://127.0.0.1:56380/0 after `prodcat stack up` with the same variables).

1. Compare (``--compare-kills`` > 0): for each consumer-group configuration (Faust's old defaults,
   short session timeouts, static membership, both), a smaller backlog and a few kills; per restart
   the time to /health ready and the time from ready to the first event consumed.
2. Main run, with the worker's own defaults: ``--events`` events (Flipkart products, each sent in
   ``--versions`` versions whose updated_at order differs from their send order, some older
   versions back to back right after a newer one, some ties), published up front; the controller
   kill -9s the worker each time the group's committed offsets pass the next of ``--kills`` evenly
   spaced marks, restarts it and times it. Then: every product exactly once in Elasticsearch with
   its newest version (newest updated_at, ties by later offset), nothing lost; products.categorised
   read back (duplicates counted: outputs are at-least-once; stale outputs counted).

The worker runs the default categoriser (the demo rules: no trained model needed) with images off:
the Flipkart names file has no image URLs, so there is nothing for Milvus to hold.
Writes benchmarks/results/recovery.md and recovery.png.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from confluent_kafka import Consumer, KafkaException  # noqa: E402
from elasticsearch import Elasticsearch, helpers  # noqa: E402

from prodcat.catalogue import read_catalogue  # noqa: E402
from prodcat.feed import publish  # noqa: E402
from prodcat.settings import Settings  # noqa: E402
from streams.lag import consumer_lag  # noqa: E402
from streams.topics import ensure_topics  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT.parent / "shared" / "datasets"
PRODUCTS = DATASETS / "flipkart" / "products_20k_name_tree.csv"
EPOCH = datetime(2024, 1, 1, tzinfo=timezone.utc)  # in the past: no record is dated in the future
# Consumer-group configurations compared in phase 1, as worker environment variables.
CONFIGS: dict[str, dict[str, str]] = {
    "before: dynamic, session 60 s": {"PRODCAT_KAFKA_SESSION_TIMEOUT_S": "60", "PRODCAT_KAFKA_HEARTBEAT_INTERVAL_S": "3",
                                      "PRODCAT_WORKER_INSTANCE_ID": ""},
    "dynamic, session 10 s": {"PRODCAT_KAFKA_SESSION_TIMEOUT_S": "10", "PRODCAT_WORKER_INSTANCE_ID": ""},
    "defaults: dynamic, session 8 s": {},
    "static id, session 8 s": {"PRODCAT_WORKER_INSTANCE_ID": "recovery-bench"},
}


# --- the events ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sent:
    """One version of a product as published: its revision number, updated_at (ms) and send order."""

    product: str
    revision: int
    updated_ms: int
    seq: int


def versioned_events(rows: list[dict], versions: int, rng: random.Random) -> tuple[list[tuple[bytes, bytes]], list[Sent]]:
    """Each product in ``versions`` versions, sent in an order that is not their updated_at order.

    Rounds: in round k every product sends its k-th version (products shuffled per round), so the
    versions of one product are far apart (older after newer across batches). The versions' updated_at
    are a random permutation of the rounds. A fifth of the products send their last two versions back
    to back, the newer first (older right after newer: within one batch); in a third of those the two
    have the same updated_at (a tie: the later offset must win).
    """
    sends: dict[str, list[tuple[int, int]]] = {}  # product -> [(revision, updated_ms)] in send order
    pairs: set[str] = set()
    for row in rows:
        pid = row["uniq_id"]
        ages = list(range(versions))
        rng.shuffle(ages)
        base = int((EPOCH + timedelta(seconds=rng.randrange(10**7))).timestamp() * 1000)
        order = [(rev, base + age * 60_000) for rev, age in enumerate(ages)]
        if versions >= 2 and rng.random() < 0.2:
            pairs.add(pid)
            (r1, t1), (r2, t2) = order[-2], order[-1]
            if rng.random() < 1 / 3:
                t1 = t2 = max(t1, t2)  # a tie: send order decides
            elif t1 < t2:
                t1, t2 = t2, t1  # the newer one first, the older right behind it
            order[-2:] = [(r1, t1), (r2, t2)]
        sends[pid] = order
    events: list[tuple[bytes, bytes]] = []
    sent: list[Sent] = []
    by_id = {row["uniq_id"]: row for row in rows}
    for k in range(versions):
        ids = list(sends)
        rng.shuffle(ids)
        for pid in ids:
            if pid in pairs and k == versions - 1:
                continue  # sent with its pair in the round before
            batch = sends[pid][k:k + 2] if pid in pairs and k == versions - 2 else sends[pid][k:k + 1]
            for revision, updated_ms in batch:
                row = by_id[pid]
                value = {"id": pid, "title": row["product_name"], "category": row["product_category_tree"],
                         "network": row.get("network"), "revision": revision,
                         "price": round(10 + revision * 1.5 + rng.random(), 2),
                         "updated_at": datetime.fromtimestamp(updated_ms / 1000, timezone.utc).isoformat()}
                events.append((pid.encode(), json.dumps(value).encode()))
                sent.append(Sent(pid, revision, updated_ms, len(sent)))
    return events, sent


def newest(sent: list[Sent]) -> dict[str, Sent]:
    """Per product the version that must win: newest updated_at, ties by the later send (offset)."""
    out: dict[str, Sent] = {}
    for s in sent:  # send order = offset order within the product's partition (one key, one partition)
        if s.product not in out or s.updated_ms >= out[s.product].updated_ms:
            out[s.product] = s
    return out


# --- the worker and the controller --------------------------------------------------------------
class Worker:
    """One `prodcat worker` process; what the controller needs to kill it and time its recovery."""

    def __init__(self, settings: Settings, env: dict[str, str], log: Path) -> None:
        self.settings = settings
        self.started = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, "-m", "prodcat", "worker", "--loglevel", "warning"],
                                     env={**os.environ, **settings.to_env(), **env}, cwd=ROOT,
                                     stdout=log.open("ab"), stderr=subprocess.STDOUT)

    def _get(self, path: str) -> str:
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{self.settings.web_port}{path}", timeout=10).read().decode()
        except urllib.error.HTTPError as err:  # /health answers 503 while not ready
            return err.read().decode()

    def ready(self) -> bool:
        """/health says ready (False while the web server is not up yet)."""
        try:
            return bool(json.loads(self._get("/health")).get("ready"))
        except (OSError, ValueError):  # connection refused / reset while starting, or a half answer
            return False

    def consumed(self) -> float:
        """Events this worker has taken from products.raw (its /metrics counter; 0 before the first)."""
        try:
            text = self._get("/metrics")
        except OSError:
            return 0.0
        prefix = f'prodcat_events_in_total{{topic="{self.settings.topic_raw}"}}'
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.kill9()


@dataclass
class Restart:
    """One restart after a kill -9: seconds from start to /health ready, and from ready to consuming."""

    at_offset: int
    healthy_s: float
    consume_s: float | None  # None: nothing consumed within the timeout


def committed(settings: Settings) -> int:
    """Events the group has committed on products.raw (sum over partitions)."""
    return sum(r.committed or 0 for r in consumer_lag(settings, settings.consumer_group, [settings.topic_raw]))


def start_and_time(settings: Settings, env: dict[str, str], log: Path, at_offset: int,
                   timeout: float = 240) -> tuple[Worker, Restart]:
    """Start a worker and time it: to /health ready, then to its first consumed event."""
    worker = Worker(settings, env, log)
    deadline = time.monotonic() + timeout
    while not worker.ready():
        if not worker.alive() or time.monotonic() > deadline:
            raise SystemExit(f"worker not ready (exit {worker.proc.poll()}); see {log}")
        time.sleep(0.1)
    ready_at = time.monotonic()
    healthy = ready_at - worker.started
    while worker.consumed() == 0:
        if not worker.alive():
            raise SystemExit(f"worker exited with {worker.proc.returncode}; see {log}")
        if time.monotonic() > deadline:
            return worker, Restart(at_offset, healthy, None)
        time.sleep(0.2)
    return worker, Restart(at_offset, healthy, time.monotonic() - ready_at)


def free_port() -> int:
    """A TCP port nobody listens on now: the benchmark's worker must not meet another one's."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fresh(base: Settings, tmp: Path, **update) -> Settings:
    """Topics, group, index and web port of this run only, on the shared stack."""
    tag = uuid.uuid4().hex[:8]
    return base.model_copy(update={
        "topic_raw": f"recovery-{tag}.raw", "topic_categorised": f"recovery-{tag}.cat",
        "topic_deadletter": f"recovery-{tag}.dlq", "topic_label_requests": f"recovery-{tag}.lr",
        "topic_labels": f"recovery-{tag}.labels", "topic_model_updates": f"recovery-{tag}.models",
        "consumer_group": f"recovery-{tag}", "es_index_products": f"recovery-{tag}",
        "es_index_labels": f"recovery-{tag}-labels", "embed_images": False,
        "milvus_uri": str(tmp / f"milvus-{tag}" / "bench.db"), **update})


@dataclass
class Run:
    """One run: the restarts and, when checked, what ended up in Elasticsearch and on the output topic."""

    config: str
    events: int
    products: int
    restarts: list[Restart] = field(default_factory=list)
    first_healthy_s: float = 0.0
    seconds: float = 0.0
    lost_sessions: int = 0  # "Heartbeat failed" in the workers' logs: a session lost while alive (load)
    check: dict[str, int] = field(default_factory=dict)


def run(base: Settings, tmp: Path, config: str, env: dict[str, str], events: list[tuple[bytes, bytes]],
        sent: list[Sent], kills: int, check: bool) -> Run:
    """Publish the backlog, start a worker, kill -9 it at ``kills`` evenly spaced commit marks, finish, check."""
    settings = fresh(base, tmp)
    ensure_topics(settings)
    publish(settings, events)
    log = tmp / f"{settings.consumer_group}.log"
    result = Run(config, len(events), len({s.product for s in sent}))
    t0 = time.monotonic()
    worker, first = start_and_time(settings, env, log, 0)
    result.first_healthy_s = first.healthy_s
    try:
        for k in range(1, kills + 1):
            mark = k * len(events) // (kills + 1)
            while (done := committed(settings)) < mark:
                if not worker.alive():
                    raise SystemExit(f"worker exited with {worker.proc.returncode}; see {log}")
                time.sleep(0.25)
            worker.kill9()
            worker, restart = start_and_time(settings, env, log, done)
            result.restarts.append(restart)
            print(f"  {config}: kill {k} at {done} committed: healthy {restart.healthy_s:.1f} s, "
                  f"consuming {restart.consume_s} s after", flush=True)
        deadline = time.monotonic() + 600
        while committed(settings) < len(events):
            if not worker.alive() or time.monotonic() > deadline:
                raise SystemExit(f"the backlog was not drained; see {log}")
            time.sleep(0.5)
        result.seconds = time.monotonic() - t0
        if check:
            time.sleep(3)  # anything still in flight would show up now
            result.check = verify(settings, sent)
    finally:
        worker.stop()
        result.lost_sessions = log.read_text(errors="replace").count("Heartbeat failed")
        Elasticsearch(**settings.es_client_kwargs()).indices.delete(index=settings.es_index_products,
                                                                   ignore_unavailable=True)
    return result


# --- the check ----------------------------------------------------------------------------------
def read_topic(settings: Settings, topic: str, idle_s: float = 10.0) -> list[dict]:
    """Every message value on ``topic`` (JSON), in partition order, reading until ``idle_s`` of silence."""
    consumer = Consumer({**settings.kafka_client_config(), "group.id": f"recovery-read-{uuid.uuid4().hex[:8]}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    out, idle = [], time.monotonic()
    while time.monotonic() - idle < idle_s:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            raise KafkaException(msg.error())
        out.append(json.loads(msg.value()))
        idle = time.monotonic()
    consumer.close()
    return out


def verify(settings: Settings, sent: list[Sent]) -> dict[str, int]:
    """Elasticsearch against the newest version of every product; products.categorised counted."""
    want = newest(sent)
    es = Elasticsearch(**settings.es_client_kwargs())
    es.indices.refresh(index=settings.es_index_products)
    docs = {hit["_id"]: hit["_source"] for hit in helpers.scan(
        es, index=settings.es_index_products, query={"query": {"match_all": {}}},
        _source_includes=["updated_at", "extras.revision"])}
    total = es.count(index=settings.es_index_products)["count"]
    stale = [pid for pid, s in want.items() if pid in docs and docs[pid].get("extras", {}).get("revision") != s.revision]
    versions: dict[tuple[str, int], int] = {}  # (product, updated_at ms) -> versions sent (2 for a tie)
    for s in sent:
        versions[(s.product, s.updated_ms)] = versions.get((s.product, s.updated_ms), 0) + 1
    ties = {pid for pid, s in want.items() if versions[(pid, s.updated_ms)] > 1}

    outputs = read_topic(settings, settings.topic_categorised)
    by_version: dict[tuple[str, int], int] = {}  # (product, updated_at ms) -> messages
    latest_out: dict[str, int] = {}
    stale_outputs = 0  # a version published after a newer one of the same product (partition order)
    for message in outputs:
        when = int(datetime.fromisoformat(message["updated_at"]).timestamp() * 1000)
        by_version[(message["id"], when)] = by_version.get((message["id"], when), 0) + 1
        if when < latest_out.get(message["id"], when):
            stale_outputs += 1
        latest_out[message["id"]] = max(when, latest_out.get(message["id"], when))
    return {
        "products": len(want), "documents": total, "distinct_documents": len(docs),
        "lost": sum(1 for pid in want if pid not in docs), "unexpected": sum(1 for pid in docs if pid not in want),
        "stale": len(stale), "stale_in_ties": len(set(stale) & ties),
        "outputs": len(outputs), # the output has no revision: the two versions of a tie count as one updated_at sent twice
        "duplicate_outputs": sum(max(0, n - versions.get(k, 1)) for k, n in by_version.items()),
        "newest_without_output": sum(1 for pid, s in want.items() if (pid, s.updated_ms) not in by_version),
        "stale_outputs": stale_outputs,
    }


# --- the report ---------------------------------------------------------------------------------
def summary(restarts: list[Restart]) -> str:
    """Median (range) of time to healthy and of time to consume after healthy."""
    healthy = [r.healthy_s for r in restarts]
    consume = [r.consume_s for r in restarts if r.consume_s is not None]
    stuck = len(restarts) - len(consume)
    cell = (f"{statistics.median(consume):.1f} ({min(consume):.1f}–{max(consume):.1f})" if consume else "-")
    return (f"{statistics.median(healthy):.1f} ({min(healthy):.1f}–{max(healthy):.1f}) | {cell}"
            + (f" + {stuck} never" if stuck else "") + f" | {sum(1 for c in consume if c <= 10)}/{len(restarts)}")


def plot(main: Run, compare: list[Run], path: Path) -> None:
    """Stacked bars per restart of the main run (to healthy, then to consuming); compare runs as dots."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [3, 2]})
    xs = range(1, len(main.restarts) + 1)
    healthy = [r.healthy_s for r in main.restarts]
    consume = [r.consume_s if r.consume_s is not None else float("nan") for r in main.restarts]
    left.bar(xs, healthy, label="start -> /health ready", color="#9bb7d4")
    left.bar(xs, consume, bottom=healthy, label="ready -> first event consumed", color="#d9534f")
    left.axhline(10, ls=":", color="grey")
    left.set(xlabel="restart after kill -9", ylabel="seconds", xticks=list(xs),
             title=f"{main.config}: {main.events:,} events, {len(main.restarts)} kills")
    left.legend(loc="upper left")
    for i, run_ in enumerate(compare):
        ys = [r.consume_s if r.consume_s is not None else float("nan") for r in run_.restarts]
        right.scatter([i] * len(ys), ys, color="#d9534f")
    right.axhline(10, ls=":", color="grey", label="goal: 10 s")
    right.set_xticks(range(len(compare)), [c.config.replace(", ", "\n") for c in compare], fontsize=8)
    right.set(ylabel="seconds from ready to consuming", title="consumer-group configurations")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def report(args: argparse.Namespace, command: str, main: Run, compare: list[Run], machine: dict, path: Path) -> None:
    c = main.check
    lines = [
        "# Recovery after kill -9",
        "",
        f"Command: `{command}`",
        "",
        f"Stack: Kafka {Settings().kafka_version} (KRaft, one broker), Elasticsearch {Settings().es_version}, Redis, as"
        " local processes on this 2-core machine, shared with other engineers' work"
        f" (load average {machine['load_start']} at the start, {machine['load_end']} at the end; {machine['note']}).",
        "One worker (`prodcat worker`, demo rules: the default categoriser without a promoted model; 4 partitions,"
        " batch 256). Images are off: the Flipkart names file has no image URLs, so there is nothing to embed and"
        " nothing for Milvus to hold; Milvus is not checked.",
        "",
        "*Time to healthy*: from starting the process to the first /health 200. *Time to consume*: from that"
        " moment to the first event the worker takes from products.raw (its `prodcat_events_in_total`, polled"
        " every 0.2 s, so up to ~0.3 s of it is polling). Kills are triggered when the group's committed offsets"
        " pass evenly spaced marks (not by timers).",
        "",
        "## Consumer-group configurations",
        "",
        f"{args.compare_events:,} events, {args.compare_kills} kills each (the same events for each configuration)."
        " Times in seconds, median (range).",
        "",
        "| configuration | time to healthy | time to consume after healthy | restarts consuming within 10 s |",
        "|---|---|---|---|",
    ]
    lines += [f"| {r.config} | {summary(r.restarts)} |" for r in compare]
    lines += [
        "",
        "What decides it: with dynamic membership the restarted worker's join waits until the broker drops the"
        " killed member, i.e. until its session expires, so start-to-consuming is about the session timeout plus"
        " a second whatever the start-up takes (Faust's 60 s gave the issue's 51-54 s). With static membership"
        " (`PRODCAT_WORKER_INSTANCE_ID`) the broker recognises the restarted worker's id, hands its partitions"
        " back at once and consuming starts 1.5-2 s after ready, independent of the session timeout.",
        "",
        "Chosen defaults: `PRODCAT_KAFKA_SESSION_TIMEOUT_S=8` (6 s is the broker's default floor,"
        " group.min.session.timeout.ms), `PRODCAT_KAFKA_HEARTBEAT_INTERVAL_S=1`, static membership off. 8 s keeps"
        " ready-to-consuming under 10 s even for a worker that is ready at once; with 10 s it is about 11 s minus"
        " the start-up time, too close to the goal for a worker that starts fast. Static membership is opt-in because of what it costs"
        " with Faust 0.15 / aiokafka 0.14 (seen here): the ids must be unique per worker and stable across its"
        " restarts; a second worker with the same id fences the first; an id reused with another web address makes"
        " Faust's assignor fail an assertion (`metadata.url == self._url`) inside aiokafka's coordination task, and"
        " that worker stays up and /health-ready while consuming nothing. The worker therefore appends its web"
        " address to the id (`id@host:port`), so two workers on one machine (different ports) never share one."
        " A static member also sends no LeaveGroup on a clean stop, so its partitions wait a session timeout.",
        "",
        "## Main run: the worker's defaults",
        "",
        f"{main.events:,} events = {main.products:,} Flipkart products x {args.versions} versions. Each product's"
        " versions are sent in rounds (versions of one product far apart) with updated_at in shuffled order, so an"
        " older version often arrives after a newer one; a fifth of the products send their last two versions"
        " back to back with the newer first (in one batch), a third of those with equal updated_at (the later"
        f" offset must win). All events are published before the worker starts. Wall time {main.seconds:.0f} s"
        f" (first start: healthy after {main.first_healthy_s:.1f} s).",
        "",
        "| restart | committed offsets at the kill | time to healthy (s) | time to consume after healthy (s) |",
        "|---|---|---|---|",
    ]
    lines += [f"| {i} | {r.at_offset:,} | {r.healthy_s:.1f} | {'never' if r.consume_s is None else f'{r.consume_s:.1f}'} |"
              for i, r in enumerate(main.restarts, 1)]
    lines += [
        f"| **median** | | **{statistics.median(r.healthy_s for r in main.restarts):.1f}** |"
        f" **{statistics.median(r.consume_s for r in main.restarts if r.consume_s is not None):.1f}** |",
        "",
        "![time to consume per restart](recovery.png)",
        "",
        "## What Elasticsearch and products.categorised hold afterwards",
        "",
        "| check | count |",
        "|---|---|",
        f"| products sent | {c['products']:,} |",
        f"| documents in Elasticsearch (distinct ids) | {c['documents']:,} ({c['distinct_documents']:,}) |",
        f"| lost (a product without a document) | **{c['lost']}** |",
        f"| duplicated (documents beyond one per product) | **{c['documents'] - c['distinct_documents'] + c['unexpected']}** |",
        f"| stale (document is not the newest version) | **{c['stale']}** (of them ties: {c['stale_in_ties']}) |",
        f"| products.categorised messages | {c['outputs']:,} |",
        f"| duplicate outputs (same product and version more than once) | {c['duplicate_outputs']:,} |",
        f"| stale outputs (a version published after a newer one of the same product) | {c['stale_outputs']:,} |",
        f"| newest version never published | {c['newest_without_output']:,} |",
        "",
        "Outputs are at-least-once: a kill -9 loses the worker's uncommitted offsets, so the events since the"
        " last commit are consumed again; the products Redis remembers as unchanged are skipped, the rest are"
        " categorised and published again (Elasticsearch takes the replay as the same version: no change there).",
    ]
    if args.notes:
        lines += ["", "## Notes", "", *[f"- {n}" for n in args.notes]]
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--versions", type=int, default=5)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--compare-kills", type=int, default=3, help="kills per configuration in phase 1 (0: skip it)")
    parser.add_argument("--compare-events", type=int, default=30_000)
    parser.add_argument("--products", type=Path, default=PRODUCTS, help="the Flipkart names file")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--note", dest="notes", action="append", default=[], help="a line for the report's notes")
    args = parser.parse_args()
    if not args.products.exists():
        raise SystemExit(f"{args.products} not found (../shared/datasets beside the repository, or --products)")
    # what changes the numbers (not where the data file is or the report goes)
    command = (f".venv/bin/python benchmarks/recovery.py --events {args.events} --versions {args.versions}"
               f" --kills {args.kills} --compare-kills {args.compare_kills} --compare-events {args.compare_events}")
    base = Settings.load()
    machine = {"load_start": "%.1f / %.1f / %.1f" % os.getloadavg()}
    rows = list(read_catalogue(args.products, "flipkart-names"))
    rng = random.Random(11)
    per_product = max(1, args.events // args.versions)
    events, sent = versioned_events(rows[:per_product], args.versions, rng)
    small_events, small_sent = versioned_events(rows[:max(1, args.compare_events // args.versions)], args.versions,
                                                random.Random(12))
    with tempfile.TemporaryDirectory(prefix="recovery-") as tmp_name:
        tmp = Path(tmp_name)
        base = base.model_copy(update={"web_port": free_port()})  # one address for every restart
        compare = []
        if args.compare_kills:
            for name, env in CONFIGS.items():
                print(f"comparing {name}", flush=True)
                compare.append(run(base, tmp, name, env, small_events, small_sent, args.compare_kills, check=False))
        print("main run with the worker's defaults", flush=True)
        main_run = run(base, tmp, "defaults: dynamic, session 8 s", {},
                       events, sent, args.kills, check=True)
    # sessions lost by a live worker (a heartbeat late under load) would show here
    machine["note"] = (f"{main_run.lost_sessions} 'Heartbeat failed' lines in the main run's worker logs,"
                       f" {sum(r.lost_sessions for r in compare)} in the comparison runs'")
    machine["load_end"] = "%.1f / %.1f / %.1f" % os.getloadavg()
    args.out.mkdir(parents=True, exist_ok=True)
    plot(main_run, compare, args.out / "recovery.png")
    report(args, command, main_run, compare, machine, args.out / "recovery.md")
    (args.out / "recovery.json").write_text(json.dumps(
        {"command": command, "machine": machine, "runs": [asdict(r) for r in [*compare, main_run]]}, indent=1) + "\n")
    print(json.dumps(main_run.check), flush=True)
    print(f"wrote {args.out / 'recovery.md'}")


if __name__ == "__main__":
    main()
