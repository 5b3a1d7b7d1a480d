"""`prodcat demo`: the real job on the local stack in a few minutes, and what it did, from the stores.

One run, in order:

1. start the stack (Kafka, Elasticsearch, Redis), create the topics, stop what a previous demo
   left running (its worker and pages: a Milvus Lite file serves one process);
2. start a worker (images embedded when photos are given) and, meanwhile, train a small ensemble
   (logreg + mlp) on the rule labels of the demo rules: the sample feed, plus the Flipkart photo
   catalogue of ``../shared/datasets`` when it is there (60 products alone make a weak model);
3. register and announce the model on ``models.updates``; wait until the worker's /health says it
   classifies with that version;
4. replay the sample feed (dirtied like a real feed) and held-out photo products (``file://``
   image URLs) into products.raw; wait until the worker's consumer group has COMMITTED every
   offset the replay produced (not on document counts: a second run re-writes the same ids);
5. print, from Elasticsearch, the products this model version decided per category, a few of
   them with scores, uncertainty and explanation, how many went to the labelling topic, and
   the vectors in Milvus;
6. leave a worker, the labelling page and the similar-products page running (pid files in
   ``<state_dir>/run``) until ``make stop`` (``prodcat demo --stop`` + ``prodcat stack down``).
"""

from __future__ import annotations

import json
import logging
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from confluent_kafka import Consumer, KafkaException, TopicPartition
from elasticsearch import Elasticsearch
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console

from prodcat.catalogue import read_catalogue
from prodcat.console import table
from prodcat.errors import DataError, InvalidRecord, StackError
from prodcat.feed import catalogue_events, event_key, publish
from prodcat.record import ProductRecord, parse_record
from prodcat.rules import RuleSet
from prodcat.settings import Settings
from prodcat.stack import Stack
from prodcat.stack.process import ManagedProcess
from prodcat.taxonomy import Taxonomy
from runtime.model_updates import Announcement, announce
from streams.lag import consumer_lag
from streams.topics import ensure_topics

if TYPE_CHECKING:
    from models.classifier import Classifier

__all__ = ["DEFAULT_PHOTOS", "DemoOptions", "DemoReport", "render", "run_demo", "stop_demo"]

DATA = Path(__file__).resolve().parent / "data"
SAMPLE_FEED = DATA / "sample_feed.jsonl"
DEMO_RULES = DATA / "demo_rules.yaml"
DEMO_TAXONOMY = DATA / "demo_taxonomy.json"
# the Flipkart photo catalogue (images.csv + images/): the same top-level categories as the demo taxonomy
DEFAULT_PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "flipkart" / "images.csv"
PHOTOS_REPLAYED = 28  # held out of training, replayed with their photos
PHOTOS_TRAINED = 420  # of the rest: enough for sensible categories, few enough to train in seconds
MEMBERS = ("logreg", "mlp")  # the fast members: seconds each on a few hundred products
EPOCHS = {"logreg": 12, "mlp": 6}
MIN_SUPPORT = 3  # rule-labelled products a category needs to be trained at all
PAGES = {"label-ui": 8089, "similar-ui": 8088}
DEMO_LABELLING_BUDGET = 500_000  # requests per day for the demo's worker: ~5/s, a share of a replay of ~10/s


@dataclass(frozen=True)
class DemoOptions:
    """What a run replays and how long it waits."""

    feed: Path = SAMPLE_FEED
    photos: Path | None = None  # a Flipkart-style images.csv with images/ beside it; None: text only
    timeout_s: float = 240.0
    noise: float = 0.3


@dataclass
class DemoReport:
    """What a run did, read back from the worker, Kafka, Elasticsearch and Milvus."""

    version: str
    trained_on: int
    categories: int
    sent: int
    by_category: list[tuple[str, int]] = field(default_factory=list)
    decided: int = 0  # documents of this model version in Elasticsearch
    examples: list[dict[str, Any]] = field(default_factory=list)
    label_requests: int = 0
    dead_letters: int = 0
    vectors: int | None = None  # Milvus rows after the run; None: images off
    urls: dict[str, str] = field(default_factory=dict)
    started: dict[str, bool] = field(default_factory=dict)  # page -> answered within the wait


def _processes(settings: Settings) -> dict[str, ManagedProcess]:
    """The demo's background processes, found by pid file like the stack's services."""
    run_dir = settings.state_dir.resolve() / "run"
    return {name: ManagedProcess(name, run_dir) for name in ("demo-worker", *PAGES)}


def stop_demo(settings: Settings, say: Callable[[str], None] = lambda _m: None) -> None:
    """Stop the worker and pages a demo left running (by their pid files); the stack stays."""
    for name, process in _processes(settings).items():
        if process.stop():
            say(f"{name}: stopped")


# --- training --------------------------------------------------------------------------------
def _parsed(raws: Iterable[dict[str, Any]]) -> list[ProductRecord]:
    records = []
    for raw in raws:
        try:
            records.append(parse_record(raw))
        except InvalidRecord:
            continue  # the stream dead-letters it; training skips it
    return records


def _every(rows: list[Any], n: int) -> list[Any]:
    """``n`` rows spread evenly over ``rows`` (the catalogue is sorted by category: every category gets some)."""
    return rows if len(rows) <= n else [rows[i * len(rows) // n] for i in range(n)]


def _photo_split(photos: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(products to train on, products to replay), disjoint: the replayed ones are not trained on."""
    rows = list(read_catalogue(photos, "flipkart-images"))
    if not rows:
        raise DataError(f"no product in the photo catalogue {photos}; expected a Flipkart-style images.csv")
    replayed = _every(rows, PHOTOS_REPLAYED)
    held = {id(r) for r in replayed}
    return _every([r for r in rows if id(r) not in held], PHOTOS_TRAINED), replayed


def train_demo_model(records: list[ProductRecord]) -> Classifier:
    """A small ensemble on the demo rules' labels of ``records``, over the categories they support."""
    # TensorFlow/Keras load here, not at `prodcat --help`
    from models.config import FeatureConfig
    from models.training import train_ensemble

    # tf.function retracing warnings: expected with members refitted per fold, noise in the demo's output
    logging.getLogger("tensorflow").setLevel(logging.ERROR)

    taxonomy = Taxonomy.from_json(DEMO_TAXONOMY.read_text(encoding="utf-8"))
    labels = [m.labels for m in RuleSet.load(DEMO_RULES, taxonomy).apply_many(records)]
    taxonomy = taxonomy.prune(support=taxonomy.support(labels), min_support=MIN_SUPPORT)
    if len(taxonomy) == 0:
        raise DataError(f"no demo category has {MIN_SUPPORT} rule-labelled products among {len(records)}; "
                        "pass a larger --file")
    labels = [{c for c in found if c in taxonomy} for found in labels]
    # text fields only: the feed's own category path would be the label itself; image vectors go to Milvus
    config = FeatureConfig.default().with_fields(category={"kind": "drop"}, category_path={"kind": "drop"},
                                                 image={"kind": "drop"})
    # a product no rule fired on is not a negative: fit the combiner and thresholds on labelled rows only
    return train_ensemble(records, labels, taxonomy, config=config, members=MEMBERS, epochs=EPOCHS, folds=3,
                          tune_on="labelled")


# --- waiting on the worker -------------------------------------------------------------------
def _get(url: str, timeout: float = 3.0) -> tuple[int, bytes]:
    """Status and body of a GET; (0, b"") when nothing answers yet."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:  # /health answers 503 with its JSON while not ready
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    """High watermark per partition of ``topic``, from the broker."""
    consumer = Consumer({**settings.kafka_client_config(), "group.id": "prodcat-demo-offsets",
                         "enable.auto.commit": False, "log_level": 0})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1]
                for p in sorted(partitions)}
    finally:
        consumer.close()


class Demo:
    """One run of the demo against the settings' stack; ``say`` gets one line per step."""

    def __init__(self, settings: Settings, options: DemoOptions, say: Callable[[str], None]) -> None:
        self.settings, self.options = settings, options
        self.started = time.monotonic()
        self._say = say
        self.processes = _processes(settings)
        self.worker_url = f"http://{settings.web_host}:{settings.web_port}"

    def say(self, message: str) -> None:
        self._say(f"[{time.monotonic() - self.started:5.1f}s] {message}")

    def _deadline(self) -> float:
        return self.started + self.options.timeout_s

    def _worker_failed(self) -> StackError:
        worker = self.processes["demo-worker"]
        return StackError(f"the demo worker exited; last lines of {worker.log_file}:\n{worker.tail(15)}")

    def _start_worker(self, *, images: bool) -> None:
        if not _port_free(self.settings.web_port):
            raise StackError(f"port {self.settings.web_port} (the worker's /metrics and /health) is in use; "
                             "stop what listens there or set PRODCAT_WEB_PORT")
        worker = self.processes["demo-worker"]
        worker.argv = [sys.executable, "-m", "prodcat", "worker", "--loglevel", "warning"]
        # the photos are local files: allowed for the demo's own worker only
        worker.env = {"PRODCAT_EMBED_IMAGES": str(images).lower(),
                      "PRODCAT_IMAGE_ALLOW_LOCAL_FILES": str(images).lower(),
                      # the rate controller spreads the daily budget over the day: with the default 1,000/day
                      # a replay of a few seconds asks for nothing; here a few seconds stand for a day
                      "PRODCAT_LABELLING_BUDGET_PER_DAY": str(DEMO_LABELLING_BUDGET)}
        worker.start()

    def _wait_for_model(self, version: str) -> None:
        """Until the worker's /health is ready and names ``version`` as its model."""
        while time.monotonic() < self._deadline():
            if self.processes["demo-worker"].pid() is None:
                raise self._worker_failed()
            status, body = _get(f"{self.worker_url}/health")
            if status == 200 and json.loads(body).get("model") == version:
                return
            time.sleep(0.5)
        raise StackError(f"the worker did not load model {version} within {self.options.timeout_s:.0f}s; see "
                         f"{self.processes['demo-worker'].log_file} (or raise --timeout)")

    def _wait_committed(self, ends: dict[int, int]) -> None:
        """Until the worker's group has committed at least ``ends`` on every partition of products.raw."""
        s = self.settings
        while time.monotonic() < self._deadline():
            if self.processes["demo-worker"].pid() is None:
                raise self._worker_failed()
            try:
                rows = consumer_lag(s, s.consumer_group, [s.topic_raw])
            except KafkaException:  # NOT_COORDINATOR while the group coordinator moves: ask again
                rows = []
            committed = {r.partition: r.committed or 0 for r in rows}
            if rows and all(committed.get(p, 0) >= end for p, end in ends.items()):
                return
            time.sleep(1.0)
        raise StackError(f"the worker did not commit the replay within {self.options.timeout_s:.0f}s "
                         f"(`prodcat lag` shows what is left); see {self.processes['demo-worker'].log_file}")

    def _events(self, photo_rows: list[dict[str, Any]]) -> Iterator[tuple[bytes | None, bytes]]:
        yield from catalogue_events(self.options.feed, "auto", noise=self.options.noise, seed=1)
        for raw in photo_rows:
            yield event_key(raw), json.dumps(raw, ensure_ascii=False).encode()

    def run(self) -> DemoReport:
        s, options = self.settings, self.options
        Stack(s).up(on_event=self.say)
        ensure_topics(s)
        stop_demo(s, say=self.say)  # a previous demo's worker would consume this run's events
        images = options.photos is not None
        self._start_worker(images=images)
        self.say(f"worker starting (images {'on' if images else 'off'}; log: "
                 f"{self.processes['demo-worker'].log_file})")

        train_rows, photo_rows = _photo_split(options.photos) if options.photos is not None else ([], [])
        records = _parsed(read_catalogue(options.feed, "auto")) + _parsed(train_rows)
        if not records:
            raise DataError(f"no product in {options.feed}; nothing to train on")
        self.say(f"training {'+'.join(MEMBERS)} on the demo rules' labels of {len(records)} products")
        classifier = train_demo_model(records)
        # TensorFlow is loaded by now: the registry saves Keras members
        from models.registry import ModelRegistry

        registry = ModelRegistry(s.model_registry.resolve())
        version = registry.register(classifier)
        announce(s, Announcement(version=version, location=str(registry.path(version)), kind="model"))
        self.say(f"trained {version} ({len(classifier.taxonomy)} categories), announced on {s.topic_model_updates}")
        self._wait_for_model(version)
        self.say("worker ready with the announced model")

        asked_before = sum(_end_offsets(s, s.topic_label_requests).values())
        sent = publish(s, self._events(photo_rows))
        if sent == 0:
            raise DataError(f"no product in {options.feed}; nothing to categorise")
        ends = _end_offsets(s, s.topic_raw)
        self.say(f"sent {sent} events ({len(photo_rows)} with photos) to {s.topic_raw}; "
                 "waiting for the worker to commit them")
        self._wait_committed(ends)
        self.say("every event consumed and committed")

        report = DemoReport(version=version, trained_on=len(records), categories=len(classifier.taxonomy), sent=sent)
        report.label_requests = sum(_end_offsets(s, s.topic_label_requests).values()) - asked_before
        report.dead_letters = self._dead_letters()
        self._read_results(report, classifier.taxonomy)
        self.processes["demo-worker"].stop()  # releases the Milvus Lite file for the similar-products page
        if images:
            report.vectors = self._vectors()
        self._serve(report, photos=options.photos)
        return report

    def _dead_letters(self) -> int:
        status, body = _get(f"{self.worker_url}/metrics", timeout=15)
        if status != 200:
            return 0
        return int(sum(sample.value for family in text_string_to_metric_families(body.decode())
                       if family.name == "prodcat_deadletters" for sample in family.samples
                       if sample.name.endswith("_total")))

    def _read_results(self, report: DemoReport, taxonomy: Taxonomy) -> None:
        s = self.settings
        es = Elasticsearch(**s.es_client_kwargs())
        try:
            es.indices.refresh(index=s.es_index_products)
            mine = {"term": {"model_version": report.version}}
            res = es.search(index=s.es_index_products, query=mine, size=0, track_total_hits=True,
                            aggs={"c": {"terms": {"field": "category_names", "size": 30}}})
            report.decided = res["hits"]["total"]["value"]
            report.by_category = [(b["key"], b["doc_count"]) for b in res["aggregations"]["c"]["buckets"]]
            # photo products first (they show the image path), then the most and the least sure
            hits = es.search(index=s.es_index_products, query=mine, size=200,
                             source=["id", "title", "categories", "scores", "uncertainty", "explanation",
                                     "image_url", "model_version"])["hits"]["hits"]
        finally:
            es.close()
        docs = [h["_source"] for h in hits]
        photos = [d for d in docs if str(d.get("image_url") or "").startswith("file:")]
        decided = sorted((d for d in docs if d.get("categories")), key=lambda d: d.get("uncertainty") or 0.0)
        unsure = sorted(docs, key=lambda d: -(d.get("uncertainty") or 0.0))
        picked: dict[str, dict[str, Any]] = {}
        for doc in [*photos[:2], *decided[:2], *unsure[:1]]:
            picked.setdefault(doc["id"], doc)
        for doc in picked.values():
            leaves = sorted(doc.get("categories") or [], key=lambda c: -taxonomy.depth(c) if c in taxonomy else 0)
            report.examples.append({
                "id": doc["id"], "title": doc.get("title") or "", "model_version": doc.get("model_version"),
                "photo": str(doc.get("image_url") or "").startswith("file:"),
                "uncertainty": doc.get("uncertainty"),
                "categories": [(taxonomy.path_str(c) if c in taxonomy else c, (doc.get("scores") or {}).get(c))
                               for c in leaves[:3]],
                # below every threshold: the best guesses, which is why it is uncertain
                "best": [(taxonomy.path_str(c) if c in taxonomy else c, score) for c, score in
                         sorted((doc.get("scores") or {}).items(), key=lambda kv: -kv[1])[:2]],
                "because_of": next((list(doc["explanation"][c]) for c in leaves if (doc.get("explanation") or {})
                                    .get(c)), []),
            })

    def _vectors(self) -> int:
        """Rows in the Milvus collection after the replay (the worker has let go of the Lite file)."""
        # pymilvus: only when images were embedded
        from embedder.index import ImageIndex

        token = self.settings.milvus_token.get_secret_value() if self.settings.milvus_token else None
        index = ImageIndex(self.settings.milvus_uri, token=token)
        try:
            return index.count()
        finally:
            index.close()

    def _serve(self, report: DemoReport, *, photos: Path | None) -> None:
        """Leave a worker (/metrics) and the two pages running; wait a little for them to answer."""
        self._start_worker(images=False)  # the similar-products page holds the Milvus Lite file now
        # the demo model's categories are the demo taxonomy's (pruned: same ids)
        commands = {"label-ui": ["label-ui", "--port", str(PAGES["label-ui"]), "--taxonomy", str(DEMO_TAXONOMY)]}
        if photos is not None:
            commands["similar-ui"] = ["similar-ui", str(photos), "--preset", "flipkart-images",
                                      "--port", str(PAGES["similar-ui"])]
        report.urls["metrics"] = f"{self.worker_url}/metrics"
        for name, args in commands.items():
            if not _port_free(PAGES[name]):
                raise StackError(f"port {PAGES[name]} ({name}) is in use; stop what listens there")
            process = self.processes[name]
            process.argv = [sys.executable, "-m", "prodcat", *args]
            process.env = {"PRODCAT_IMAGE_ALLOW_LOCAL_FILES": "true"}  # the pages show the local photos
            process.start()
        report.urls["labelling"] = f"http://127.0.0.1:{PAGES['label-ui']}/"
        if photos is not None:
            example = next((e["id"] for e in report.examples if e["photo"]), None)
            report.urls["similar"] = f"http://127.0.0.1:{PAGES['similar-ui']}/judge"
            if example:
                report.urls["similar_api"] = f"http://127.0.0.1:{PAGES['similar-ui']}/similar/{example}"
        probes = {"metrics": report.urls["metrics"], "labelling": report.urls["labelling"]}
        if "similar" in report.urls:
            probes["similar"] = report.urls["similar"]
        deadline = time.monotonic() + 45
        while probes and time.monotonic() < deadline:
            for name, url in list(probes.items()):
                if _get(url)[0] == 200:
                    report.started[name] = True
                    del probes[name]
            time.sleep(0.5)
        report.started.update(dict.fromkeys(probes, False))


def run_demo(settings: Settings, options: DemoOptions, say: Callable[[str], None]) -> DemoReport:
    """Run the demo once (see the module docstring); the stack and the pages keep running."""
    if not options.feed.is_file():
        raise DataError(f"catalogue file {options.feed} does not exist; pass --file with an existing catalogue")
    if options.photos is not None and not options.photos.is_file():
        raise DataError(f"photo catalogue {options.photos} does not exist; expected a Flipkart-style images.csv "
                        "with images/ beside it (PRODCAT_DEMO_PHOTOS), or pass --no-photos")
    return Demo(settings, options, say).run()


def render(report: DemoReport, console: Console) -> None:
    """What the run did, for a person: counts per category, examples, labelling, the URLs to open."""
    shown = table("category", "products", title=f"{report.decided} products in Elasticsearch decided by {report.version}")
    for name, count in report.by_category:
        shown.add_row(name, str(count))
    console.print(shown)
    examples = table("product", "categories (score)", "uncertainty", "because of", title="a few of them")
    for e in report.examples:
        cats = "\n".join(f"{name} ({score:.2f})" if score is not None else name for name, score in e["categories"])
        best = "; ".join(f"{name} {score:.2f}" for name, score in e["best"])
        examples.add_row(f"{e['id']}{' [photo]' if e['photo'] else ''}\n{e['title'][:60]}",
                         cats or f"none above its threshold (best: {best or '-'})",
                         f"{e['uncertainty']:.2f}" if e["uncertainty"] is not None else "-",
                         ", ".join(e["because_of"][:4]) or "-")
    console.print(examples)
    console.print(f"model {report.version}: {report.categories} categories, trained on the demo rules' labels "
                  f"of {report.trained_on} products; it decided all {report.decided} shown", highlight=False)
    console.print(f"{report.label_requests} products went to the labelling topic (a product asked for in the last "
                  f"PRODCAT_LABELLING_WINDOW_S is not asked again); {report.dead_letters} dead letters"
                  + (f"; {report.vectors} image vectors in Milvus" if report.vectors is not None else
                     "; images off (no photo catalogue)"), highlight=False)
    labels = {"metrics": "worker /metrics", "labelling": "labelling page", "similar": "similar-products page",
              "similar_api": "similar products of one photo product"}
    for key, url in report.urls.items():
        state = report.started.get(key)
        note = "" if state is None or state else "  (still starting)"
        console.print(f"{labels[key]:<38} {url}{note}", highlight=False)
    console.print("the stack, a worker and the pages keep running until [bold]make stop[/bold]")
