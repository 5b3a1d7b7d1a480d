"""The model ensemble and the image embedder inline, on the real stack, through two SIGKILLs."""

from __future__ import annotations

import json
import random

import pytest
from elasticsearch import Elasticsearch

from embedder.index import ImageIndex
from models.artifact import save_classifier
from models.training import train_ensemble
from prodcat.catalogue import read_catalogue, true_category_path
from prodcat.feed import event_key, publish
from prodcat.record import parse_record
from prodcat.taxonomy import Taxonomy
from runtime.model_updates import Announcement, announce
from streams.topics import ensure_topics
from tests.helpers import wait_for_count

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def myntra_model(datasets, tmp_path_factory):
    """A small real ensemble (logreg + mlp) trained on true Myntra categories, saved as an artifact."""
    raws = list(read_catalogue(datasets / "myntra" / "styles.csv", "myntra"))
    random.Random(1).shuffle(raws)
    records = [parse_record({k: v for k, v in r.items() if k != "category"}) for r in raws[:1500]]
    paths = [true_category_path(parse_record(r)) for r in raws[:1500]]
    taxonomy = Taxonomy.from_paths(true_category_path(parse_record(r)) for r in raws)
    classifier = train_ensemble(records, [{taxonomy.find(p)} for p in paths], taxonomy,
                                members=("logreg", "mlp"), folds=2, seed=0)
    return save_classifier(classifier, tmp_path_factory.mktemp("model") / classifier.version), classifier.version


def test_two_sigkills_while_5000_products_flow_leave_each_product_once(isolated, workers, datasets, myntra_model):
    location, version = myntra_model
    settings = isolated.model_copy(update={"embed_images": True, "image_allow_local_files": True,
                                           "batch_size": 128})
    rows = list(read_catalogue(datasets / "myntra" / "images.csv", "myntra-images"))[:5000]
    events = [(event_key(r), json.dumps({k: v for k, v in r.items() if k != "category"}).encode()) for r in rows]
    ensure_topics(settings)
    announce(settings, Announcement(version=version, location=str(location), kind="model"))
    publish(settings, events)
    es = Elasticsearch(**settings.es_client_kwargs())

    for target in (1200, 3000):  # SIGKILL mid-stream, twice: uncommitted batches replay
        worker = workers(settings)
        reached = wait_for_count(es, settings.es_index_products, target, 600, worker)
        assert reached < len(events), "the kill must land mid-stream"
        worker.kill(9)
    last = workers(settings)
    assert wait_for_count(es, settings.es_index_products, len(events), 900, last) == len(events)
    last.kill(15)  # Milvus Lite is one process's file: read it after the worker is gone

    es.indices.refresh(index=settings.es_index_products)
    assert es.count(index=settings.es_index_products)["count"] == len(events), "exactly once in Elasticsearch"
    versions = es.search(index=settings.es_index_products, size=0,
                         aggs={"v": {"terms": {"field": "model_version"}}})["aggregations"]["v"]["buckets"]
    assert [(b["key"], b["doc_count"]) for b in versions] == [(version, len(events))], "categories from the model"
    with_categories = es.count(index=settings.es_index_products,
                               query={"exists": {"field": "categories"}})["count"]
    assert with_categories > 0.8 * len(events)

    index = ImageIndex(settings.milvus_uri)
    try:
        ids = [r["id"] for r in rows]
        assert index.count() == len(events), "exactly once in Milvus (primary key = product id)"
        stored = index.get(ids[:200])
        assert {v.id for v in stored} == set(ids[:200]) and all(v.model_version == version for v in stored)
    finally:
        index.close()
