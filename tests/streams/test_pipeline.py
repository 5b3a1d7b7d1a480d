"""The stream's logic without Kafka: parse, reject, categorise, build documents."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from prodcat.categoriser import Categoriser
from prodcat.limits import InputLimits
from prodcat.rules import RuleCategoriser, RuleSet
from prodcat.taxonomy import Taxonomy
from streams.pipeline import RawEvent, categorised_message, process_batch, product_document, updated_version

TAXONOMY = Taxonomy.from_paths([("Clothing", "Shorts"), ("Clothing", "Shirts"), ("Footwear", "Sneakers")])
RULES = """
- id: shorts
  category: Clothing > Shorts
  all: [{field: title, word: shorts}]
- id: sneakers
  category: Footwear > Sneakers
  any: [{field: title, word: sneaker}, {field: category, word: sneakers}]
"""


@pytest.fixture
def categoriser() -> RuleCategoriser:
    return RuleCategoriser(RuleSet.from_yaml(RULES, TAXONOMY))


def event(value: dict | bytes, offset: int = 0) -> RawEvent:
    data = value if isinstance(value, bytes) else json.dumps(value).encode()
    return RawEvent(data, key=b"k", topic="products.raw", partition=0, offset=offset)


def test_good_and_bad_events_are_separated_with_reasons(categoriser):
    events = [
        event({"id": "p1", "title": "<b>Alisha</b> Solid Women&#39;s Cycling Shorts"}, 0),
        event(b"{broken", 1),
        event({"title": "no id here"}, 2),
        event({"id": "p4", "title": "x" * 500}, 3),
        event({"id": "p5", "price": "12"}, 4),
    ]
    outcome = process_batch(events, categoriser, limits=InputLimits(field_chars=200))
    assert [c.record.id for c in outcome.classified] == ["p1"]
    assert outcome.classified[0].record.title == "Alisha Solid Women's Cycling Shorts"
    by_offset = {d.offset: d for d in outcome.rejected}
    assert set(by_offset) == {1, 2, 3, 4}
    assert by_offset[1].stage == "parse" and by_offset[1].original_bytes() == b"{broken"
    assert by_offset[2].stage == "validate" and "id" in by_offset[2].reason
    assert "title" in by_offset[3].reason
    assert all(d.source_topic == "products.raw" and d.key == "k" for d in outcome.rejected)


def test_rule_categories_include_ancestors(categoriser):
    outcome = process_batch([event({"id": "p1", "title": "Running Shorts", "category": "Sport"}),
                             event({"id": "p2", "title": "Canvas Shoe", "category": "Footwear > Sneakers"})],
                            categoriser, limits=InputLimits())
    cats = {c.record.id: set(c.result.categories) for c in outcome.classified}
    shorts, clothing = TAXONOMY.find(["Clothing", "Shorts"]), TAXONOMY.find(["Clothing"])
    assert cats["p1"] == {shorts, clothing}
    assert cats["p2"] == {TAXONOMY.find(["Footwear", "Sneakers"]), TAXONOMY.find(["Footwear"])}


class Exploding(Categoriser):
    """Fails on one particular product, as a buggy model might."""

    version = "boom-1"

    def __init__(self, inner: Categoriser) -> None:
        self.inner = inner

    def categorise_batch(self, records, image_vectors=None):
        if any(r.id == "bad" for r in records):
            raise ValueError("cannot categorise this one")
        return self.inner.categorise_batch(records, image_vectors)


def test_a_categoriser_failure_costs_only_the_failing_record(categoriser):
    outcome = process_batch([event({"id": "ok", "title": "Denim Shorts"}, 0), event({"id": "bad", "title": "Shorts"}, 1)],
                            Exploding(categoriser), limits=InputLimits())
    assert [c.record.id for c in outcome.classified] == ["ok"]
    assert [(d.offset, d.stage) for d in outcome.rejected] == [(1, "categorise")]
    assert "cannot categorise" in outcome.rejected[0].reason


def test_document_and_message_carry_names_levels_and_version(categoriser):
    outcome = process_batch([event({"id": "p1", "title": "Shorts", "updated_at": "2024-05-01T10:00:00Z"})],
                            categoriser, limits=InputLimits())
    item = outcome.classified[0]
    doc = product_document(item, TAXONOMY, "rules-abc")
    assert doc["category_names"] == ["Clothing", "Clothing > Shorts"]
    assert doc["level1"] == [TAXONOMY.find(["Clothing"])] and doc["level2"] == [TAXONOMY.find(["Clothing", "Shorts"])]
    assert doc["model_version"] == "rules-abc" and doc["id"] == "p1"
    msg = json.loads(categorised_message(item, TAXONOMY, "rules-abc"))
    assert msg["id"] == "p1" and set(msg["categories"]) == set(doc["categories"])
    assert updated_version(item.record) == int(datetime(2024, 5, 1, 10, tzinfo=timezone.utc).timestamp() * 1000)
