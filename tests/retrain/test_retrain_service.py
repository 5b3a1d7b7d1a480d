"""Labels on the topic -> retrain -> promotion -> the running worker switches; a worse model is refused."""

from __future__ import annotations

import json
import random
import time
from collections import Counter

import pytest
from elasticsearch import Elasticsearch

from models.training import train_ensemble
from prodcat.catalogue import read_catalogue, true_category_path
from prodcat.feed import event_key, publish
from prodcat.record import parse_record
from prodcat.rules import generate_rules
from prodcat.taxonomy import Taxonomy
from retrain.job import GatePolicy
from retrain.service import retrain_once
from tests.helpers import health, wait_for_count

pytestmark = pytest.mark.integration


def test_a_better_model_is_promoted_and_used_a_worse_one_is_not(isolated, workers, datasets, tmp_path):
    settings = isolated.model_copy(update={"es_index_labels": f"labels-{isolated.consumer_group}",
                                           "es_index_evaluations": f"evals-{isolated.consumer_group}",
                                           "model_registry": tmp_path / "models", "model_check_interval_s": 1.0})
    raws = list(read_catalogue(datasets / "myntra" / "styles.csv", "myntra"))
    rng = random.Random(3)
    rng.shuffle(raws)
    raws = raws[:700]
    truth = {r.id: true_category_path(r) for r in map(parse_record, raws)}
    taxonomy = Taxonomy.from_paths(truth.values())
    # the legacy rules stop at level 2: people's labels are what teaches the deeper levels
    (tmp_path / "taxonomy.json").write_text(taxonomy.to_json())
    generate_rules(taxonomy, max_depth=2).save(tmp_path / "rules.yaml")
    env = {"PRODCAT_TAXONOMY_PATH": str(tmp_path / "taxonomy.json"), "PRODCAT_RULES_PATH": str(tmp_path / "rules.yaml")}
    settings = settings.model_copy(update={"taxonomy_path": tmp_path / "taxonomy.json",
                                           "rules_path": tmp_path / "rules.yaml"})

    # products without their category field, as a feed that gives only titles would send them
    events = [(event_key(r), json.dumps({k: v for k, v in r.items() if k != "category"}).encode()) for r in raws]
    publish(settings, events[:600])
    worker = workers(settings, **env)
    es = Elasticsearch(**settings.es_client_kwargs())
    wait_for_count(es, settings.es_index_products, 600, 240, worker)

    labels = [(pid.encode(), json.dumps({"product_id": pid, "category": taxonomy.find(path), "positive": True,
                                         "labeller": "oracle"}).encode())
              for pid, path in list(truth.items())[:450]]
    publish(settings.model_copy(update={"topic_raw": settings.topic_labels}), labels)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        es.indices.refresh(index=settings.es_index_labels, ignore_unavailable=True)
        if es.indices.exists(index=settings.es_index_labels) and \
                es.count(index=settings.es_index_labels)["count"] == 450:
            break
        time.sleep(1)

    policy = GatePolicy(min_holdout=50)

    def mislabelled(recs, label_sets, tax, weights):
        # every product taught as one category of the rarest top level: wrong for nearly everything
        # (shuffled labels were not enough: the frequent top-level categories survive a shuffle)
        label_sets = list(label_sets)
        counts = Counter(c for s in label_sets for c in s)
        rare_root = min((c for c in counts if tax.depth(c) == 1), key=lambda c: (counts[c], c))
        wrong = tax.close([rare_root])
        return train_ensemble(recs, [wrong] * len(label_sets), tax, members=("logreg",), folds=2,
                              sample_weight=weights)

    worse = retrain_once(settings, policy=policy, train=mislabelled)
    assert not worse.promoted, worse.reason
    assert not (tmp_path / "models").exists(), "a refused candidate is not registered"

    better = retrain_once(settings, policy=policy, members=("logreg", "mlp"), folds=2)
    assert better.promoted, better.reason
    assert better.candidate_metrics["micro_f1"] > better.current_metrics["micro_f1"]

    deadline = time.monotonic() + 120  # the worker loads the announced model between batches
    while health(settings.web_port).get("model") != better.candidate_version:
        assert time.monotonic() < deadline and worker.proc.poll() is None, worker.log_tail()
        time.sleep(1)
    publish(settings, events[600:])  # after the swap: classified by the new model
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        es.indices.refresh(index=settings.es_index_products)
        docs = es.search(index=settings.es_index_products, size=100,
                         query={"ids": {"values": [k.decode() for k, _ in events[600:]]}})["hits"]["hits"]
        if len(docs) == 100:
            break
        time.sleep(1)
    assert {d["_source"]["model_version"] for d in docs} == {better.candidate_version}
    es.indices.refresh(index=settings.es_index_evaluations)
    assert es.count(index=settings.es_index_evaluations)["count"] == 2, "every round's metrics are stored"
