"""Taxonomy: stable ids, tree navigation, ancestor closure, pruning and snapshots, on real trees."""

from __future__ import annotations

import hashlib
import json
import random
import time
from pathlib import Path

import numpy as np
import pytest

from prodcat.catalogue import read_catalogue, true_category_path
from prodcat.errors import DataError
from prodcat.record import parse_record
from prodcat.taxonomy import Taxonomy, path_id

PATHS = [
    ("Clothing", "Men's Clothing", "Shorts"),
    ("Clothing", "Women's Clothing", "Dresses"),
    ("Clothing", "Women's Clothing", "Shorts", "Cycling Shorts"),
    ("Footwear", "Sports Shoes"),
    ("Watches",),
]


@pytest.fixture(scope="module")
def small() -> Taxonomy:
    return Taxonomy.from_paths(PATHS)


@pytest.fixture(scope="module")
def google(datasets: Path) -> Taxonomy:
    return Taxonomy.from_google(datasets / "taxonomies" / "google_product_taxonomy.txt")


@pytest.fixture(scope="module")
def flipkart_paths(datasets: Path) -> list[list[str]]:
    rows = read_catalogue(datasets / "flipkart" / "products_20k_name_tree.csv", "flipkart-names")
    return [true_category_path(parse_record(r)) for r in rows]


@pytest.fixture(scope="module")
def flipkart(flipkart_paths: list[list[str]]) -> Taxonomy:
    return Taxonomy.from_paths(flipkart_paths)


# --- Google's taxonomy -------------------------------------------------------------------------


def test_google_loader_counts(google: Taxonomy) -> None:
    assert len(google) == 5595
    assert len(google.roots()) == 21
    assert google.max_depth == 7


@pytest.mark.parametrize(
    ("category_id", "path", "parent", "depth"),
    [
        ("1", ("Animals & Pet Supplies",), None, 1),
        ("3237", ("Animals & Pet Supplies", "Live Animals"), "1", 2),
        ("166", ("Apparel & Accessories",), None, 1),
        ("1604", ("Apparel & Accessories", "Clothing"), "166", 2),
        ("3", ("Animals & Pet Supplies", "Pet Supplies", "Bird Supplies"), "2", 3),
    ],
)
def test_google_ids_parents_depth(google: Taxonomy, category_id, path, parent, depth) -> None:
    assert category_id in google
    assert google.path(category_id) == path
    assert google.name(category_id) == path[-1]
    assert google.parent(category_id) == parent
    assert google.depth(category_id) == depth
    assert google.find([p.upper() + "  " for p in path]) == category_id
    assert category_id in google.children(parent) if parent else category_id in google.roots()


def test_google_every_node_consistent(google: Taxonomy) -> None:
    for category_id in google.ids:
        chain = google.ancestors(category_id)
        assert len(chain) == google.depth(category_id) - 1
        assert tuple(google.path(a)[-1] for a in chain) == google.path(category_id)[:-1]
        assert google.at_level(category_id, 1) == (chain[0] if chain else category_id)


def test_google_bad_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("# header\n1 - Animals\nnot a category line\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.txt:3: expected '<numeric id> - "):
        Taxonomy.from_google(bad)
    orphan = tmp_path / "orphan.txt"
    orphan.write_text("5 - Animals > Pets\n", encoding="utf-8")
    with pytest.raises(DataError, match="has no parent category 'Animals'"):
        Taxonomy.from_google(orphan)
    with pytest.raises(DataError, match="cannot read the Google taxonomy"):
        Taxonomy.from_google(tmp_path / "missing.txt")


# --- ids and order -----------------------------------------------------------------------------


def test_path_id_is_documented_hash() -> None:
    expected = "c" + hashlib.sha1("clothing > men's clothing".encode()).hexdigest()[:10]
    assert path_id(["Clothing", "Men's Clothing"]) == expected
    assert path_id(["  CLOTHING", "Men's   clothing "]) == expected


def test_ids_stable_across_loads_and_input_order(small: Taxonomy) -> None:
    shuffled = list(reversed(PATHS))
    other = Taxonomy.from_paths(shuffled)
    assert other.ids == small.ids
    assert other == small
    # the same path in another dataset (different siblings) keeps its id
    elsewhere = Taxonomy.from_paths([("clothing", "men's clothing", "shorts"), ("Toys",)])
    shorts = small.find(["Clothing", "Men's Clothing", "Shorts"])
    assert elsewhere.find(["Clothing", "Men's Clothing", "Shorts"]) == shorts
    assert elsewhere.index(shorts) != small.index(shorts)  # columns are per tree, ids are not


def test_order_is_depth_then_path(small: Taxonomy) -> None:
    keys = [(small.depth(i), tuple(n.casefold() for n in small.path(i))) for i in small.ids]
    assert keys == sorted(keys)
    for i, category_id in enumerate(small.ids):
        assert small.index(category_id) == i
        assert small.id_at(i) == category_id


def test_from_paths_adds_prefixes_and_truncates(small: Taxonomy) -> None:
    assert len(small) == 10
    assert small.find(["Clothing", "Women's Clothing", "Shorts"]) is not None
    shallow = Taxonomy.from_paths(PATHS, max_depth=2)
    assert shallow.max_depth == 2
    assert len(shallow) == 6
    assert Taxonomy.from_paths([[], ["", "x"]]).ids == ()


# --- navigation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "ancestors", "children", "level1", "level2"),
    [
        (("Clothing",), (), (("Clothing", "Men's Clothing"), ("Clothing", "Women's Clothing")),
         ("Clothing",), None),
        (("Clothing", "Women's Clothing", "Shorts", "Cycling Shorts"),
         (("Clothing",), ("Clothing", "Women's Clothing"), ("Clothing", "Women's Clothing", "Shorts")),
         (), ("Clothing",), ("Clothing", "Women's Clothing")),
        (("Watches",), (), (), ("Watches",), None),
    ],
)
def test_navigation(small: Taxonomy, path, ancestors, children, level1, level2) -> None:
    category_id = small.find(path)
    assert small.ancestors(category_id) == tuple(small.find(a) for a in ancestors)
    assert small.children(category_id) == tuple(small.find(c) for c in children)
    assert small.at_level(category_id, 1) == small.find(level1)
    assert small.at_level(category_id, 2) == (small.find(level2) if level2 else None)
    assert small.depth(category_id) == len(path)


def test_find_and_leaves(small: Taxonomy) -> None:
    assert small.find(["clothing", "WOMEN'S  CLOTHING"]) == small.find(["Clothing", "Women's Clothing"])
    assert small.find(["Clothing", "Kids"]) is None
    assert small.find_deepest(["Clothing", "Women's Clothing", "Jeans", "Skinny"]) == small.find(
        ["Clothing", "Women's Clothing"])
    assert small.find_deepest(["Toys"]) is None
    leaf_names = {small.name(i) for i in small.leaves()}
    assert leaf_names == {"Shorts", "Dresses", "Cycling Shorts", "Sports Shoes", "Watches"}


def test_unknown_id_is_a_clear_key_error(small: Taxonomy) -> None:
    with pytest.raises(KeyError, match="unknown category id 'nope'"):
        small.parent("nope")
    with pytest.raises(KeyError):
        small.close(["nope"])


# --- closure -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "closed"),
    [
        ([], []),
        ([("Watches",)], [("Watches",)]),
        ([("Clothing", "Women's Clothing", "Shorts", "Cycling Shorts")],
         [("Clothing",), ("Clothing", "Women's Clothing"), ("Clothing", "Women's Clothing", "Shorts"),
          ("Clothing", "Women's Clothing", "Shorts", "Cycling Shorts")]),
        ([("Clothing", "Men's Clothing", "Shorts"), ("Footwear", "Sports Shoes")],
         [("Clothing",), ("Clothing", "Men's Clothing"), ("Clothing", "Men's Clothing", "Shorts"),
          ("Footwear",), ("Footwear", "Sports Shoes")]),
    ],
)
def test_close_small(small: Taxonomy, labels, closed) -> None:
    ids = [small.find(p) for p in labels]
    expected = {small.find(p) for p in closed}
    assert small.close(ids) == expected
    assert small.close_many([ids]) == [expected]
    matrix = small.close_matrix(small.to_matrix([ids]))
    assert small.from_matrix(matrix) == [expected]


def test_close_matrix_checks_shape_and_dtype(small: Taxonomy) -> None:
    with pytest.raises(ValueError, match=r"shape \(n, 10\)"):
        small.close_matrix(np.zeros((2, 3), dtype=bool))
    with pytest.raises(ValueError, match="bool matrix"):
        small.close_matrix(np.zeros((2, 10), dtype=np.int8), inplace=True)
    y = np.zeros((1, len(small)), dtype=bool)
    y[0, small.index(small.find(("Footwear", "Sports Shoes")))] = True
    original = y.copy()
    small.close_matrix(y)
    assert (y == original).all()  # not in place unless asked
    assert small.close_matrix(y, inplace=True) is y
    assert y.sum() == 2


def test_closure_of_100k_label_sets_on_flipkart(flipkart: Taxonomy) -> None:
    assert 5000 < len(flipkart) < 6500
    rng = random.Random(7)
    leaves = flipkart.leaves()
    label_sets = [rng.sample(leaves, rng.randint(1, 3)) for _ in range(100_000)]

    start = time.perf_counter()
    closed_sets = flipkart.close_many(label_sets)
    set_seconds = time.perf_counter() - start
    y = flipkart.to_matrix(label_sets)
    start = time.perf_counter()
    flipkart.close_matrix(y, inplace=True)
    matrix_seconds = time.perf_counter() - start
    print(f"\nclosure of 100k label sets over {len(flipkart)} categories: "
          f"close_many {set_seconds:.3f}s, close_matrix(inplace) {matrix_seconds:.3f}s")

    assert flipkart.from_matrix(y) == closed_sets
    for labels, closed in zip(label_sets[:2000], closed_sets[:2000]):  # an independent walk up the tree
        expected = set()
        for label in labels:
            node = label
            while node is not None:
                expected.add(node)
                node = flipkart.parent(node)
        assert closed == expected


# --- pruning -----------------------------------------------------------------------------------


def test_prune_by_depth_and_support(flipkart: Taxonomy, flipkart_paths: list[list[str]]) -> None:
    shallow = flipkart.prune(max_depth=4)
    assert shallow.max_depth == 4
    assert set(shallow.ids) == {i for i in flipkart.ids if flipkart.depth(i) <= 4}

    labels = [[flipkart.find(p)] for p in flipkart_paths if p]
    support = flipkart.support(labels)
    assert support[flipkart.find(["Clothing"])] == sum(1 for p in flipkart_paths if p and p[0] == "Clothing")
    pruned = flipkart.prune(max_depth=4, support=support, min_support=20)
    assert 0 < len(pruned) < len(shallow)
    for category_id in pruned.ids:
        assert support[category_id] >= 20
        assert pruned.path(category_id) == flipkart.path(category_id)  # ids and paths survive
        assert pruned.parent(category_id) == flipkart.parent(category_id)
    rare = next(i for i in shallow.ids if support.get(i, 0) < 20)
    assert rare not in pruned
    deep = next(p for p in flipkart_paths if len(p) >= 6)
    assert pruned.find_deepest(deep) in pruned
    assert pruned.depth(pruned.find_deepest(deep)) <= 4


def test_prune_drops_descendants_of_dropped(small: Taxonomy) -> None:
    women = small.find(["Clothing", "Women's Clothing"])
    support = {i: 5 for i in small.ids}
    support[women] = 0
    pruned = small.prune(support=support, min_support=1)
    assert women not in pruned
    assert not any(pruned.path(i)[:2] == ("Clothing", "Women's Clothing") for i in pruned.ids)
    assert len(pruned) == len(small) - 4


# --- snapshots ---------------------------------------------------------------------------------


def test_json_round_trip(google: Taxonomy, flipkart: Taxonomy) -> None:
    for taxonomy in (google, flipkart):
        back = Taxonomy.from_json(taxonomy.to_json())
        assert back == taxonomy
        assert back.ids == taxonomy.ids
        assert all(back.path(i) == taxonomy.path(i) for i in taxonomy.ids[::97])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not JSON"),
        (json.dumps({"format": "other/1", "nodes": []}), "Expected a taxonomy snapshot with format"),
        (json.dumps({"format": "prodcat.taxonomy/1", "nodes": [{"path": ["A"]}]}), "'id' and 'path'"),
        (json.dumps({"format": "prodcat.taxonomy/1", "nodes": [{"id": "x", "path": ["A", "B"]}]}),
         "has no parent category 'A'"),
        (json.dumps({"format": "prodcat.taxonomy/1",
                     "nodes": [{"id": "x", "path": ["A"]}, {"id": "x", "path": ["B"]}]}), "used for two paths"),
    ],
)
def test_json_errors(text: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        Taxonomy.from_json(text)
