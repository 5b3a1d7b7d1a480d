"""labelling.labels -> the label store, on the real stack; bad label messages are dead-lettered; p is kept."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from elasticsearch import AsyncElasticsearch, Elasticsearch

from prodcat.feed import publish
from prodcat.taxonomy import Taxonomy
from retrain.label_store import HumanLabel, LabelStore
from retrain.labelling_kafka import label_message
from retrain.labelling_queue import parse_request
from retrain.labelling_tool import request_fields
from retrain.weights import importance_weights, label_probabilities
from runtime.deadletter import DeadLetter
from streams.topics import ensure_topics
from tests.helpers import drain, wait_for_count

pytestmark = pytest.mark.integration
DEMO_TAXONOMY = Taxonomy.from_json(
    (__import__("pathlib").Path(__file__).resolve().parents[2] / "prodcat/data/demo_taxonomy.json").read_text())


def test_labels_are_stored_and_bad_ones_dead_lettered(isolated, workers):
    settings = isolated.model_copy(update={"es_index_labels": f"labels-{isolated.consumer_group}"})
    ensure_topics(settings)
    publish(settings, [(b"p1", json.dumps({"id": "p1", "title": "Men's Slim Fit Casual Shirt"}).encode())])
    worker = workers(settings)
    wait_for_count(Elasticsearch(**settings.es_client_kwargs()), settings.es_index_products, 1, 120, worker)

    shirts = DEMO_TAXONOMY.find(["Clothing", "Men's Clothing", "Shirts"])
    label = {"product_id": "p1", "category": shirts, "positive": True, "labeller": "ana",
             "labelled_at": "2026-01-01T10:00:00Z"}
    publish(settings.model_copy(update={"topic_raw": settings.topic_labels}), [
        (b"p1", json.dumps(label).encode()),
        (b"p1", json.dumps({**label, "labeller": "ben", "positive": False}).encode()),
        (b"p9", json.dumps({**label, "product_id": "p9"}).encode()),               # unknown product
        (b"p1", json.dumps({**label, "category": "No > Such > Category"}).encode()),  # unknown category
        (b"p1", b"{not json"),
    ])
    bad = []
    deadline = time.monotonic() + 120
    while len(bad) < 3 and time.monotonic() < deadline:
        bad = [DeadLetter.from_message(m.key(), m.value(), m.headers())
               for m in drain(settings, settings.topic_deadletter, 3)]
    assert sorted(d.stage for d in bad) == ["labels", "parse", "validate"]
    assert any("unknown product 'p9'" in d.reason for d in bad)
    assert {d.value for d in bad} >= {b"{not json"}

    async def stored():
        es = AsyncElasticsearch(**settings.es_client_kwargs())
        try:
            store = LabelStore(es, index=settings.es_index_labels, products_index=settings.es_index_products)
            return await store.counts_by_labeller(), await store.conflicts()
        finally:
            await es.close()

    counts, conflicts = asyncio.run(stored())
    assert counts == {"ana": 1, "ben": 1}
    assert [(c.product_id, c.category) for c in conflicts] == [("p1", shirts)], "two labellers disagree: visible"


def test_a_label_keeps_the_p_its_request_was_drawn_with(isolated, workers):
    """Worker -> labelling.requests (with p) -> labels with and without p -> the store keeps p for both."""
    # rules have no doubt signals: every product is asked at the floor p_min, scaled to the budget;
    # this budget puts p near 0.4 for 20 products in one batch, so some are asked and p is not 1
    settings = isolated.model_copy(update={"es_index_labels": f"labels-{isolated.consumer_group}",
                                           "labelling_budget_per_day": 20_000.0})
    ensure_topics(settings)
    ids = [f"{settings.consumer_group}-q{i}" for i in range(20)]  # the gate's Redis keys are per product id
    publish(settings, [(pid.encode(), json.dumps({"id": pid, "title": f"Men's Cotton Shirt {pid}"}).encode())
                       for pid in ids])
    worker = workers(settings)
    wait_for_count(Elasticsearch(**settings.es_client_kwargs()), settings.es_index_products, 20, 120, worker)
    requests = [parse_request(m.value()) for m in drain(settings, settings.topic_label_requests)]
    assert len(requests) >= 2, "some of the 20 products were asked for"
    assert all(0 < r["p"] <= 1 and r["reason"].startswith("exploration") for r in requests)

    shirts = DEMO_TAXONOMY.find(["Clothing", "Men's Clothing", "Shirts"])
    first, second = requests[0], requests[1]
    from_tool = HumanLabel.model_validate({"product_id": first["id"], "category": shirts, "positive": True,
                                           "labeller": "ana", **request_fields(first)})
    without_p = HumanLabel(product_id=second["id"], category=shirts, positive=True, labeller="ben")
    publish(settings.model_copy(update={"topic_raw": settings.topic_labels}),
            [(lb.product_id.encode(), label_message(lb)) for lb in (from_tool, without_p)])

    es = Elasticsearch(**settings.es_client_kwargs())
    deadline, docs = time.monotonic() + 120, []
    while len(docs) < 2 and time.monotonic() < deadline:
        es.indices.refresh(index=settings.es_index_labels, ignore_unavailable=True)
        if es.indices.exists(index=settings.es_index_labels):
            docs = [h["_source"] for h in es.search(index=settings.es_index_labels, size=10)["hits"]["hits"]]
        time.sleep(0.5)
    stored = {d["product_id"]: d["p"] for d in docs}
    # the tool's label kept its p; the other got it joined from the worker's record of the request
    assert stored == {first["id"]: first["p"], second["id"]: second["p"]}
    weights = importance_weights(label_probabilities([HumanLabel.model_validate(d) for d in docs]))
    assert weights[first["id"]] * first["p"] == pytest.approx(weights[second["id"]] * second["p"])
