"""labelling.labels -> the label store, on the real stack; bad label messages are dead-lettered."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from elasticsearch import AsyncElasticsearch, Elasticsearch

from prodcat.feed import publish
from prodcat.taxonomy import Taxonomy
from retrain.labels import LabelStore
from streams.deadletter import DeadLetter
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
