"""Human labels: parsing, vote resolution on the tree, and the store on the real Elasticsearch."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone

import pytest
from elasticsearch import AsyncElasticsearch

from prodcat.errors import InvalidRecord
from prodcat.taxonomy import Taxonomy
from retrain.label_store import HumanLabel, LabelStore, parse_label
from retrain.resolution import ProductLabels, find_conflicts, resolve, tally
from runtime.sinks.elastic import Document, ElasticSink

TAXONOMY = Taxonomy.from_paths([("Shoes", "Sneakers"), ("Shoes", "Boots"), ("Clothing", "Shirts")])
SHOES, SNEAKERS, BOOTS = (TAXONOMY.find(p) for p in (["Shoes"], ["Shoes", "Sneakers"], ["Shoes", "Boots"]))
CLOTHING, SHIRTS = TAXONOMY.find(["Clothing"]), TAXONOMY.find(["Clothing", "Shirts"])
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def msg(**fields) -> bytes:
    base = {"product_id": "p1", "category": SNEAKERS, "positive": True, "labeller": "ann",
            "labelled_at": "2024-05-01T10:00:00Z"}
    return json.dumps({**base, **fields}).encode()


def at(minutes: int) -> datetime:
    return NOW + timedelta(minutes=minutes)


def label(product: str, category: str, positive: bool, labeller: str = "ann", minutes: int = 0) -> HumanLabel:
    return HumanLabel(product_id=product, category=category, positive=positive, labeller=labeller,
                      labelled_at=at(minutes))


# --- parsing ---------------------------------------------------------------------------------

GOOD = [
    (msg(), {"category": SNEAKERS, "labelled_at": datetime(2024, 5, 1, 10, tzinfo=timezone.utc)}),
    (msg(category="Shoes > Sneakers"), {"category": SNEAKERS}),
    (msg(category="shoes // sneakers"), {"category": SNEAKERS}),
    (msg(category="Clothing"), {"category": CLOTHING}),
    (msg(positive=False), {"positive": False}),
    (msg(labelled_at=1714557600000), {"labelled_at": datetime(2024, 5, 1, 10, tzinfo=timezone.utc)}),
    (msg(labelled_at="2024-05-01T12:00:00+02:00"), {"labelled_at": datetime(2024, 5, 1, 10, tzinfo=timezone.utc)}),
    (msg(labelled_at="2024-05-01 10:00:00"), {"labelled_at": datetime(2024, 5, 1, 10, tzinfo=timezone.utc)}),
    (msg(product_id=123), {"product_id": "123"}),
    (msg(labeller="  bob  ", note="looks like a sneaker"), {"labeller": "bob"}),
]


@pytest.mark.parametrize(("raw", "expected"), GOOD)
def test_good_labels_parse(raw, expected):
    parsed = parse_label(raw, TAXONOMY, now=NOW)
    for name, value in expected.items():
        assert getattr(parsed, name) == value
    assert parsed.labelled_at.tzinfo is not None and parsed.labelled_at.utcoffset() == timedelta(0)


def test_time_defaults_to_now_and_the_key_fills_the_product():
    raw = json.dumps({"category": SHIRTS, "positive": True, "labeller": "ann"}).encode()
    parsed = parse_label(raw, TAXONOMY, key=b"p9")
    assert parsed.product_id == "p9"
    assert abs(parsed.labelled_at - datetime.now(timezone.utc)) < timedelta(seconds=5)


BAD = [
    (b"not json", "not JSON"),
    (b"\xff\xfe", "not JSON"),
    (b"[1, 2]", "JSON object"),
    (json.dumps({"product_id": "p1", "category": SNEAKERS, "labeller": "ann"}).encode(), "positive"),
    (msg(positive="yes"), "positive"),
    (msg(positive=1), "positive"),
    (msg(product_id=""), "product_id"),
    (msg(labeller=""), "labeller"),
    (msg(labeller="   "), "labeller"),
    (msg(labeller="ann|bob"), "labeller"),
    (msg(category="Shoes > Sandals"), "unknown category"),
    (msg(category="c0000000000"), "unknown category"),
    (msg(category=""), "category"),
    (msg(labelled_at="yesterday"), "labelled_at"),
    (msg(labelled_at="1960-01-01T00:00:00Z"), "after 1970"),
    (msg(labelled_at="2024-05-01T14:00:00Z"), "in the future"),
]


@pytest.mark.parametrize(("raw", "reason"), BAD)
def test_bad_labels_are_invalid_records_with_a_reason(raw, reason):
    with pytest.raises(InvalidRecord) as caught:
        parse_label(raw, TAXONOMY, now=NOW)
    # bytes that are not JSON fail at "parse", JSON we cannot use at "validate" (as for products)
    assert caught.value.stage == ("parse" if reason == "not JSON" else "validate")
    assert reason in caught.value.reason


def test_a_product_id_that_contradicts_the_key_is_refused():
    with pytest.raises(InvalidRecord, match="differs from the message key"):
        parse_label(msg(product_id="p1"), TAXONOMY, key=b"p2", now=NOW)


def test_doc_id_and_version():
    lab = parse_label(msg(), TAXONOMY, now=NOW)
    assert lab.doc_id == f"p1|{SNEAKERS}|ann"
    assert lab.version == 1714557600000


# --- resolution (plain functions) --------------------------------------------------------------


def test_latest_decision_per_labeller_counts():
    votes = tally([label("p1", SNEAKERS, True, minutes=0), label("p1", SNEAKERS, False, minutes=5),
                   label("p1", SNEAKERS, True, minutes=1)])
    assert resolve(votes, TAXONOMY) == {"p1": ProductLabels(frozenset(), frozenset({SNEAKERS}))}


def test_tree_rules():
    votes = tally([
        label("a", SNEAKERS, True),                               # positive -> + ancestors
        label("b", SNEAKERS, False),                              # low negative: Shoes untouched
        label("c", SHOES, False),                                 # high negative -> + descendants
        label("d", SNEAKERS, True), label("d", SHOES, False, "bob"),  # positive descendant wins
        label("e", SHOES, True), label("e", BOOTS, False),        # consistent: both kept
    ])
    got = resolve(votes, TAXONOMY)
    assert got["a"] == ProductLabels(frozenset({SHOES, SNEAKERS}), frozenset())
    assert got["b"] == ProductLabels(frozenset(), frozenset({SNEAKERS}))
    assert got["c"] == ProductLabels(frozenset(), frozenset({SHOES, SNEAKERS, BOOTS}))
    assert got["d"] == ProductLabels(frozenset({SHOES, SNEAKERS}), frozenset(), overridden=frozenset({SHOES}))
    assert got["e"] == ProductLabels(frozenset({SHOES}), frozenset({BOOTS}))


def test_majority_decides_conflicts_and_a_tie_is_not_used():
    votes = tally([label("p", SNEAKERS, True, "ann"), label("p", SNEAKERS, False, "bob"),
                   label("p", SNEAKERS, True, "cat"),
                   label("p", SHIRTS, True, "ann"), label("p", SHIRTS, False, "bob"),
                   label("q", BOOTS, True, "ann"), label("q", BOOTS, False, "bob")])
    assert resolve(votes, TAXONOMY) == {"p": ProductLabels(frozenset({SHOES, SNEAKERS}), frozenset())}
    assert [(c.product_id, c.category, c.positive_labellers, c.negative_labellers, c.outcome)
            for c in find_conflicts(votes)] == sorted([
                ("p", SNEAKERS, ("ann", "cat"), ("bob",), "positive"), ("p", SHIRTS, ("ann",), ("bob",), "tie"),
                ("q", BOOTS, ("ann",), ("bob",), "tie")])


def test_categories_gone_from_the_taxonomy_are_skipped():
    assert resolve(tally([label("p", "c-retired", True)]), TAXONOMY) == {}


# --- the store on the real Elasticsearch --------------------------------------------------------


def with_store(settings, scenario, products=("p1", "p2", "p3")):
    """Run ``scenario(store, refresh)`` against fresh labels and products indices of this test."""
    labels_index = settings.es_index_products.replace("products", "labels")

    async def main():
        es = AsyncElasticsearch(**settings.es_client_kwargs())
        try:
            sink = ElasticSink(es, settings.es_index_products)
            await sink.ensure_index()
            await sink.write([Document(p, 1, {"id": p, "title": f"product {p}"}) for p in products])
            store = LabelStore(es, index=labels_index, products_index=settings.es_index_products)
            await store.ensure_index()

            async def refresh():
                await es.indices.refresh(index=labels_index)

            return await scenario(store, refresh)
        finally:
            await es.indices.delete(index=f"{labels_index},{settings.es_index_products}", ignore_unavailable=True)
            await es.close()

    return asyncio.run(main())


@pytest.mark.integration
def test_last_decision_per_labeller_wins_and_replays_change_nothing(isolated):
    async def scenario(store: LabelStore, refresh):
        first, second = label("p1", SNEAKERS, True, minutes=0), label("p1", SNEAKERS, False, minutes=5)
        assert (await store.write([first])).written == 1
        assert (await store.write([second])).written == 1
        replay = await store.write([first])
        assert (replay.written, replay.stale) == (0, 1)
        again = await store.write([second])  # the same decision again: idempotent, not stale
        assert (again.written, again.stale) == (1, 0)
        mixed = await store.write([second, first])  # one batch, any order: the later time wins
        assert (mixed.written, mixed.stale) == (1, 1)
        await refresh()
        assert await store.total() == 1
        assert await store.resolved(TAXONOMY) == {"p1": ProductLabels(frozenset(), frozenset({SNEAKERS}))}

    with_store(isolated, scenario)


@pytest.mark.integration
def test_tree_rules_conflicts_unknown_products_and_counts(isolated):
    async def scenario(store: LabelStore, refresh):
        result = await store.write([
            parse_label(msg(product_id="p1", category="Shoes > Sneakers", labeller="ann"), TAXONOMY),
            label("p1", SNEAKERS, False, "bob"), label("p1", SNEAKERS, True, "cat"),
            label("p2", SNEAKERS, False, "ann"),
            label("p3", SHOES, False, "ann"), label("p3", SHIRTS, True, "ann"),
            label("ghost", SHIRTS, True, "bob"), label("phantom", SHOES, False, "cat"),
        ])
        assert (result.written, result.stale, result.unknown_products) == (6, 0, ["ghost", "phantom"])
        assert result.failed == {}
        await refresh()
        resolved = await store.resolved(TAXONOMY)
        assert resolved == {
            "p1": ProductLabels(frozenset({SHOES, SNEAKERS}), frozenset()),     # ancestors added, 2:1 majority
            "p2": ProductLabels(frozenset(), frozenset({SNEAKERS})),            # Shoes not negated
            "p3": ProductLabels(frozenset({CLOTHING, SHIRTS}), frozenset({SHOES, SNEAKERS, BOOTS})),
        }
        assert await store.resolved(TAXONOMY, product_ids=["p2", "ghost"]) == {"p2": resolved["p2"]}
        assert [(c.product_id, c.category, c.positive_labellers, c.negative_labellers, c.outcome)
                for c in await store.conflicts()] == [("p1", SNEAKERS, ("ann", "cat"), ("bob",), "positive")]
        assert await store.counts_by_labeller() == {"ann": 4, "bob": 1, "cat": 1}
        assert await store.total() == 6

    with_store(isolated, scenario)


@pytest.mark.integration
def test_without_a_products_index_every_label_is_unknown(isolated):
    async def scenario(store: LabelStore, refresh):
        store.products_index = store.products_index + "-missing"
        result = await store.write([label("p1", SNEAKERS, True)])
        assert (result.written, result.unknown_products) == (0, ["p1"])
        await refresh()
        assert await store.total() == 0
        assert await store.counts_by_labeller() == {}

    with_store(isolated, scenario)
