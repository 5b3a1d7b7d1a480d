"""The rule-based stream end to end on the real broker and the real Elasticsearch."""

from __future__ import annotations

import json
import random
import time

import pytest
from elasticsearch import Elasticsearch

from prodcat.catalogue import add_noise, read_catalogue, true_category_path
from prodcat.errors import InvalidRecord
from prodcat.feed import event_key, publish
from prodcat.record import parse_record
from prodcat.rules import RuleSet, generate_rules
from prodcat.taxonomy import Taxonomy
from runtime.deadletter import DeadLetter
from streams.topics import ensure_topics
from tests.helpers import drain, wait_for_count

pytestmark = pytest.mark.integration


def malformed_events(n: int, max_field_chars: int) -> list[tuple[bytes | None, bytes]]:
    """Every kind of input the worker must reject without crashing."""
    kinds = [
        lambda i: b"{not json",
        lambda i: b"[1, 2, 3]",
        lambda i: b'"just a string"',
        lambda i: b"",
        lambda i: b"\xff\xfe\x00garbage",
        lambda i: json.dumps({"title": f"Wireless mouse {i}", "brand": "Acme"}).encode(),  # no id
        lambda i: json.dumps({"id": f"bad-{i}", "price": "9.99"}).encode(),  # nothing to classify
        lambda i: json.dumps({"id": f"bad-{i}", "title": "x" * (max_field_chars + 10)}).encode(),
        lambda i: json.dumps({"id": "", "title": "Cotton shorts"}).encode(),
        lambda i: b"null",
    ]
    return [(f"bad-{i}".encode() if i % 2 else None, kinds[i % len(kinds)](i)) for i in range(n)]


def test_flipkart_replay_with_malformed_events_and_a_worker_crash(isolated, workers, datasets, tmp_path):
    settings = isolated.model_copy(update={"batch_size": 100})
    names = datasets / "flipkart" / "products_20k_name_tree.csv"
    taxonomy = Taxonomy.from_paths(
        filter(None, map(true_category_path, map(parse_record, read_catalogue(names, "flipkart-names")))),
        max_depth=4)
    rules = generate_rules(taxonomy)
    (tmp_path / "taxonomy.json").write_text(taxonomy.to_json())
    rules.save(tmp_path / "rules.yaml")
    rules = RuleSet.load(tmp_path / "rules.yaml", taxonomy)

    rng = random.Random(7)
    valid = [(event_key(raw), json.dumps(add_noise(raw, rng, 0.3)).encode())
             for raw, _ in zip(read_catalogue(names, "flipkart-names"), range(2000))]
    bad = malformed_events(200, settings.max_field_chars)
    events = valid + bad
    rng.shuffle(events)
    expected = {}  # product id -> rule categories; the last event of an id wins (same key, same partition)
    bad_values = set()
    for key, value in events:
        try:
            record = parse_record(value, limits=settings.input_limits())
            expected[record.id] = rules.apply(record).labels
        except InvalidRecord:
            bad_values.add(value)
    assert len(expected) >= 1900 and bad_values == {v for _, v in bad}

    ensure_topics(settings)
    # the second half is published only after the kill, so the crash always happens mid-stream
    # (however fast the first worker drains the first half)
    first_half, second_half = events[:1100], events[1100:]
    assert publish(settings, first_half) == 1100
    es = Elasticsearch(**settings.es_client_kwargs())
    env = {"PRODCAT_TAXONOMY_PATH": str(tmp_path / "taxonomy.json"), "PRODCAT_RULES_PATH": str(tmp_path / "rules.yaml")}

    first = workers(settings, **env)
    wait_for_count(es, settings.es_index_products, 600, timeout=180, worker=first)
    first.kill(9)  # no graceful shutdown: uncommitted batches must be replayed
    assert publish(settings, second_half) == 1100

    second = workers(settings, **env)
    count = wait_for_count(es, settings.es_index_products, len(expected), timeout=240, worker=second)
    assert count == len(expected), second.log_tail()
    time.sleep(3)  # anything still in flight would show up as an extra document now
    es.indices.refresh(index=settings.es_index_products)
    assert es.count(index=settings.es_index_products)["count"] == len(expected)

    docs = {hit["_id"]: hit["_source"] for hit in es.search(
        index=settings.es_index_products, size=len(expected) + 10, query={"match_all": {}},
        source_includes=["categories", "category_names", "model_version"])["hits"]["hits"]}
    assert set(docs) == set(expected), "every valid product exactly once, nothing else"
    wrong = [pid for pid, cats in expected.items() if set(docs[pid]["categories"]) != cats]
    assert not wrong, f"{len(wrong)} products with other categories than the rules', e.g. {wrong[:3]}"
    labelled = [cats for cats in expected.values() if cats]
    assert len(labelled) > 500, "the generated rules fire on a good share of Flipkart titles"
    for pid, cats in expected.items():
        for cat in cats:
            assert set(taxonomy.ancestors(cat)) <= cats, "ancestors are part of every categorisation"

    dead = [DeadLetter.from_message(m.key(), m.value(), m.headers()) for m in drain(settings, settings.topic_deadletter)]
    assert {d.value for d in dead} == bad_values
    assert all(d.reason and d.stage in {"parse", "validate"} for d in dead)
    categorised = {json.loads(m.value())["id"] for m in drain(settings, settings.topic_categorised)}
    assert categorised == set(expected)
