"""The image path of the stream on the real stack: fetch -> cache -> embed -> Milvus, beside the text."""

from __future__ import annotations

import json
import time

import pytest
from elasticsearch import ApiError, Elasticsearch

from embedder.index import ImageIndex
from prodcat.catalogue import read_catalogue, true_category_path
from prodcat.feed import event_key, publish
from prodcat.record import parse_record
from prodcat.rules import generate_rules
from prodcat.taxonomy import Taxonomy
from streams.topics import ensure_topics

pytestmark = pytest.mark.integration


def count(es: Elasticsearch, index: str) -> int:
    try:
        es.indices.refresh(index=index)
        return es.count(index=index)["count"]
    except ApiError:
        return 0


def test_products_with_photos_get_vectors_in_milvus_by_level2(isolated, workers, datasets, tmp_path):
    settings = isolated.model_copy(update={"embed_images": True, "image_allow_local_files": True})
    catalogue = datasets / "myntra" / "images.csv"
    rows = list(read_catalogue(catalogue, "myntra-images"))[:150]
    taxonomy = Taxonomy.from_paths(filter(None, (true_category_path(parse_record(r)) for r in
                                                 read_catalogue(datasets / "myntra" / "styles.csv", "myntra"))))
    (tmp_path / "taxonomy.json").write_text(taxonomy.to_json())
    generate_rules(taxonomy).save(tmp_path / "rules.yaml")
    broken = {**rows[0], "id": "broken-image", "image_url": (tmp_path / "missing.jpg").as_uri()}
    events = [(event_key(r), json.dumps(r).encode()) for r in [*rows, broken]]

    ensure_topics(settings)
    publish(settings, events)
    worker = workers(settings, PRODCAT_TAXONOMY_PATH=str(tmp_path / "taxonomy.json"),
                     PRODCAT_RULES_PATH=str(tmp_path / "rules.yaml"))
    es = Elasticsearch(**settings.es_client_kwargs())
    deadline = time.monotonic() + 300
    while count(es, settings.es_index_products) < len(events):
        assert time.monotonic() < deadline, worker.log_tail()
        assert worker.proc.poll() is None, worker.log_tail()
        time.sleep(1)
    worker.kill(15)  # Milvus Lite is one process's file: read it once the worker is gone

    assert es.get(index=settings.es_index_products, id="broken-image")["found"], "classified on text alone"
    index = ImageIndex(settings.milvus_uri)
    try:
        assert index.count() == len(rows), "one vector per product with a usable photo, none for the broken one"
        stored = {v.id: v for v in index.get([r["id"] for r in rows])}
        by_id = {r["id"]: parse_record(r) for r in rows}
        labelled = [pid for pid, v in stored.items() if v.level2]
        assert len(labelled) > len(rows) * 0.6, "rules give most Myntra products a level-2 category"
        right = sum(taxonomy.path(stored[pid].level2) == tuple(true_category_path(by_id[pid])[:2]) for pid in labelled)
        assert right >= 0.8 * len(labelled), "the level-2 stored with a vector is the product's category"
        for pid in labelled:
            assert taxonomy.depth(stored[pid].level2) == 2 and taxonomy.parent(stored[pid].level2) == stored[pid].level1
        query = labelled[0]
        neighbours = index.similar(query, k=10)
        assert neighbours and all(n.level2 == stored[query].level2 and n.id != query for n in neighbours)
        assert all(-1.0 <= n.score <= 1.0001 for n in neighbours)
    finally:
        index.close()
