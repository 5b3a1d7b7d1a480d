"""Issue 14.5, the active-learning loop end to end on the real stack.

A model trained on rule labels classifies a Myntra sample in the real worker and asks for labels
with ``p``; a scripted labeller answers through the labelling tool (its HTTP API, the one the
page uses) from the catalogue's true categories; the worker's intake stores the labels with
``p``; a retraining round trains with the self-normalised 1/p weights and the rule-trust
correction, the gate promotes the candidate, and the worker's later outputs carry its version.
"""

from __future__ import annotations

import asyncio
import json
import random
import time

import aiohttp
import numpy as np
import pytest
from aiohttp.test_utils import TestServer
from confluent_kafka import Consumer, TopicPartition
from elasticsearch import Elasticsearch

from models.registry import ModelRegistry
from prodcat.catalogue import read_catalogue, true_category_path
from prodcat.feed import event_key, publish
from prodcat.record import parse_record
from prodcat.rules import RuleSet, generate_rules
from prodcat.settings import Settings
from prodcat.taxonomy import Taxonomy
from retrain.job import GatePolicy, in_holdout, training_targets, training_weights
from retrain.label_store import HumanLabel
from retrain.labelling_tool import labelling_app
from retrain.resolution import resolve, tally
from retrain.service import default_trainer, retrain_once
from retrain.weights import RuleTrust
from runtime.model_updates import Announcement, announce
from streams.lag import consumer_lag
from streams.topics import ensure_topics
from tests.helpers import health, wait_for_count

pytestmark = pytest.mark.integration

FIRST, LATER = 600, 100  # products before the retraining round, and after it
DEADLINE_S = 180.0  # generous: only a broken loop takes this long


def _until(what: str, check, worker, timeout: float = DEADLINE_S):
    """Wait for an event (``check()`` returns something truthy); fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if worker.proc.poll() is not None:
            pytest.fail(f"worker exited with {worker.proc.returncode} while waiting for {what}:\n{worker.log_tail()}")
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:.0f} s\n{worker.log_tail()}")
        time.sleep(0.5)


def _all_acked(settings: Settings, published: int) -> bool:
    """The worker committed every raw event: their outputs (label requests included) are all delivered."""
    rows = consumer_lag(settings, settings.consumer_group, [settings.topic_raw])
    return sum(r.committed or 0 for r in rows) == published and all(r.lag == 0 for r in rows)


def _read_topic(settings: Settings, topic: str) -> list[dict]:
    """Every message now on ``topic`` (to its end offsets, read once), as JSON."""
    consumer = Consumer({**settings.kafka_client_config(), "group.id": f"read-{time.time()}",
                         "enable.auto.commit": False, "log_level": 0})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1]
                for p in partitions}
        consumer.assign([TopicPartition(topic, p, 0) for p, end in ends.items() if end > 0])
        left, out = dict(ends), []
        deadline = time.monotonic() + 60
        while any(offset > 0 for offset in left.values()) and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            out.append(json.loads(msg.value()))
            left[msg.partition()] = ends[msg.partition()] - msg.offset() - 1
        assert not any(offset > 0 for offset in left.values()), f"{topic}: could not read to its end"
        return out
    finally:
        consumer.close()


def _label_everything(settings: Settings, taxonomy: Taxonomy, truth: dict[str, list[str]], expected: int) -> dict:
    """The scripted labeller: through the labelling tool's HTTP API, answer ``expected`` requests from the truth.

    Per product: the true category is a yes; every category the model decided that is not on the
    true path is a no (what a person rejecting a wrong decision sends).
    """
    app = labelling_app(settings, taxonomy, token=None)

    async def scenario() -> dict:
        # unsafe: the jar keeps cookies of an IP address (the tool keeps the labeller name in one)
        async with TestServer(app, host="127.0.0.1") as server, \
                aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            assert (await http.post(server.make_url("/labeller"), json={"name": "oracle"})).status == 200
            deadline = time.monotonic() + DEADLINE_S
            while True:
                stats = await (await http.get(server.make_url("/stats"))).json()
                assert stats["reader_error"] is None, stats
                if stats["labelled"] == expected:
                    return stats
                assert time.monotonic() < deadline, f"the tool offered {stats['labelled']} of {expected} requests"
                shown = (await (await http.get(server.make_url("/next"))).json())["request"]
                if shown is None:  # the tool's consumer has not read the next requests yet
                    await asyncio.sleep(0.2)
                    continue
                true_id = taxonomy.find(truth[shown["id"]])
                on_path = taxonomy.close({true_id})
                decisions = [{"category": true_id, "positive": True}] + [
                    {"category": c["id"], "positive": False} for c in shown["categories"]
                    if c["decided"] and c["known"] and c["id"] not in on_path]
                resp = await http.post(server.make_url("/labels"),
                                       json={"product_id": shown["id"], "decisions": decisions})
                assert resp.status == 200, await resp.text()

    return asyncio.run(scenario())


def test_labels_asked_with_p_retrain_a_model_the_worker_then_uses(isolated, workers, datasets, tmp_path):
    tag = isolated.consumer_group.rsplit("-", 1)[-1]
    settings = isolated.model_copy(update={
        "es_index_labels": f"labels-{tag}", "es_index_evaluations": f"evals-{tag}",
        "model_registry": tmp_path / "models", "model_check_interval_s": 1.0,
        "taxonomy_path": tmp_path / "taxonomy.json", "rules_path": tmp_path / "rules.yaml",
        # 600 products in one backlog: this budget asks for about 170 of them, p from ~0.02 to ~0.8
        # (doubtful products near 1, confident ones near the floor); the hard cap stays far away
        "labelling_budget_per_day": 250_000.0,
    })
    raws = list(read_catalogue(datasets / "myntra" / "styles.csv", "myntra"))
    random.Random(14).shuffle(raws)
    # ids of this test only: the labelling gate's Redis keys are per product id (one request per window)
    raws = [{**raw, "id": f"{tag}-{raw['id']}"} for raw in raws[:FIRST + LATER]]
    truth = {r.id: true_category_path(r) for r in map(parse_record, raws)}
    # the feed without its category field: the rules and the models see titles and attributes only
    events = [(event_key(raw), json.dumps({k: v for k, v in raw.items() if k != "category"}).encode())
              for raw in raws]
    records = [parse_record(value) for _, value in events]
    taxonomy = Taxonomy.from_paths(truth.values())
    # the legacy rules stop at level 2: only people's labels teach the third level (the article type)
    generate_rules(taxonomy, max_depth=2).save(settings.rules_path)
    settings.taxonomy_path.write_text(taxonomy.to_json())
    rules = RuleSet.load(settings.rules_path, taxonomy)
    env = {"PRODCAT_TAXONOMY_PATH": str(settings.taxonomy_path), "PRODCAT_RULES_PATH": str(settings.rules_path)}

    # 1. the model in the stream at the start: trained on the rules' labels, the retraining's own way
    train = default_trainer(settings, members=("logreg",), folds=2)
    first = train(records[:FIRST], [rules.apply(r).labels for r in records[:FIRST]], taxonomy, None)
    registry = ModelRegistry(settings.model_registry)
    registry.register(first)
    ensure_topics(settings)
    announce(settings, Announcement(version=first.version, location=str(registry.path(first.version))))

    # 2. the worker classifies the first products and asks for labels with p
    assert publish(settings, events[:FIRST]) == FIRST
    worker = workers(settings, **env)
    es = Elasticsearch(**settings.es_client_kwargs())
    assert wait_for_count(es, settings.es_index_products, FIRST, DEADLINE_S, worker) == FIRST, worker.log_tail()
    _until("every raw event acked", lambda: _all_acked(settings, FIRST), worker)
    requests = {r["id"]: r for r in _read_topic(settings, settings.topic_label_requests)}
    assert len(requests) >= 100, f"only {len(requests)} of {FIRST} products were asked for"
    assert {r["model_version"] for r in requests.values()} == {first.version}
    ps = np.array([r["p"] for r in requests.values()])
    assert ((0 < ps) & (ps <= 1)).all() and ps.max() / ps.min() > 2, "p varies with the model's doubt"
    assert any(r["reason"].startswith("uncertainty") for r in requests.values())

    # 3. the scripted labeller answers every request through the labelling tool
    stats = _label_everything(settings, taxonomy, truth, expected=len(requests))
    published = stats["published"]["oracle"]
    assert published >= len(requests)

    def stored_labels() -> list[dict]:
        es.indices.refresh(index=settings.es_index_labels, ignore_unavailable=True)
        if not es.indices.exists(index=settings.es_index_labels) or \
                es.count(index=settings.es_index_labels)["count"] < published:
            return []
        return [h["_source"] for h in es.search(index=settings.es_index_labels, size=published + 10)["hits"]["hits"]]

    docs = _until(f"{published} labels in the label store", stored_labels, worker)
    assert len(docs) == published
    # the store kept the p each product was asked with (the tool copied it from the request)
    assert {d["product_id"]: d["p"] for d in docs} == {pid: r["p"] for pid, r in requests.items()}
    assert {d["model_version"] for d in docs} == {first.version}

    # 4. a retraining round; the trainer is the default one, wrapped to keep the weights it is given
    seen: dict = {}

    def recording(recs, label_sets, tax, sample_weight):
        seen.update(ids=[r.id for r in recs], weights=np.asarray(sample_weight))
        return train(recs, label_sets, tax, sample_weight)

    policy = GatePolicy()  # a holdout of 20 human-labelled products at least
    report = retrain_once(settings, policy=policy, train=recording)

    # the weights: a labelled product's self-normalised 1/p (mean 1 over the labelled products) on
    # the entries a person decided ...
    stored = [HumanLabel.model_validate(d) for d in docs]
    human = resolve(tally(stored), taxonomy)
    inverse = {d["product_id"]: 1.0 / d["p"] for d in docs}
    mean = sum(inverse.values()) / len(inverse)
    expected_w = {pid: inv / mean for pid, inv in inverse.items()}
    ids, weights = seen["ids"], seen["weights"]
    assert weights.shape == (len(ids), len(taxonomy)), "per entry: the rule-trust correction is on"
    held = {pid for pid in human if in_holdout(pid, policy.holdout_share)}
    assert not held & set(ids) and set(ids) == {r.id for r in records[:FIRST]} - held
    trained_labelled = [pid for pid in ids if pid in human]
    assert len(trained_labelled) == len(requests) - len(held) == report.n_human_labelled - report.n_holdout
    for row, pid in enumerate(ids):
        if pid in human:
            true_col = taxonomy.index(taxonomy.find(truth[pid]))
            assert weights[row, true_col] == pytest.approx(expected_w[pid], rel=1e-5), pid
    # ... and the rule labels weighted by the trust the (training) human labels give the rules
    hits = es.search(index=settings.es_index_products, size=FIRST + 10, source_includes=["rule_labels"])["hits"]["hits"]
    rule_labels = {h["_id"]: set(h["_source"].get("rule_labels") or ()) for h in hits}
    assert rule_labels == {r.id: rules.apply(r).labels for r in records[:FIRST]}, "the worker stored the rules' labels"
    train_human = {pid: h for pid, h in human.items() if pid not in held}
    trust = RuleTrust.estimate(rule_labels, train_human, expected_w, taxonomy)
    for row, pid in enumerate(ids):
        if pid not in human:  # a rule positive weighs the rule's estimated precision
            for c in rule_labels[pid]:
                assert weights[row, taxonomy.index(c)] == pytest.approx(trust.precision[taxonomy.index(c)], rel=1e-5)
    unlabelled = [row for row, pid in enumerate(ids) if pid not in human]
    assert (weights[unlabelled] < 1).any(), "rule entries are discounted"
    targets = training_targets(rule_labels, train_human, taxonomy)
    np.testing.assert_allclose(weights, training_weights(ids, targets, rule_labels, train_human, taxonomy,
                                                         importance=expected_w, correct_rules=True), rtol=1e-5)
    # the round's report (and its evaluations record) keeps what those weights were
    w = np.array([expected_w[pid] for pid in trained_labelled])
    summary = {"n": len(w), "min": w.min(), "max": w.max(), "mean": w.mean(), "effective": w.sum() ** 2 / (w ** 2).sum()}
    assert report.importance == pytest.approx(summary)

    # 5. the gate: better on the human-labelled holdout than the rule-trained model, so promoted
    assert report.promoted, report.reason
    assert report.current_version == first.version and report.candidate_version != first.version
    assert report.candidate_metrics["micro_f1"] > report.current_metrics["micro_f1"]
    new = report.candidate_version
    es.indices.refresh(index=settings.es_index_evaluations)
    evaluations = es.search(index=settings.es_index_evaluations)["hits"]["hits"]
    assert len(evaluations) == 1 and evaluations[0]["_source"]["importance"] == pytest.approx(summary)

    # 6. the worker swaps to the promoted model between batches; what it classifies later carries it
    _until(f"the worker on model {new}", lambda: health(settings.web_port).get("model") == new, worker)
    assert publish(settings, events[FIRST:]) == LATER
    later = {r.id for r in records[FIRST:]}
    assert wait_for_count(es, settings.es_index_products, FIRST + LATER, DEADLINE_S, worker) == FIRST + LATER
    _until("every raw event acked", lambda: _all_acked(settings, FIRST + LATER), worker)
    out = [m for m in _read_topic(settings, settings.topic_categorised) if m["id"] in later]
    assert {m["id"] for m in out} == later
    assert {m["model_version"] for m in out} == {new}
    es.indices.refresh(index=settings.es_index_products)
    stored_later = es.search(index=settings.es_index_products, size=LATER, source_includes=["model_version"],
                             query={"ids": {"values": sorted(later)}})["hits"]["hits"]
    assert len(stored_later) == LATER and {d["_source"]["model_version"] for d in stored_later} == {new}
    asked_later = [r for r in _read_topic(settings, settings.topic_label_requests) if r["id"] in later]
    assert {r["model_version"] for r in asked_later} <= {new}
