"""ImageIndex against real Milvus: Milvus Lite (a file) and the standalone server (PyPI ``milvus``)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from embedder.index import ImageIndex, ImageVector, quote_literal
from prodcat.errors import ConfigError, InvalidRecord, NotFound

ROOT = Path(__file__).resolve().parents[2]
DIM = 64
SHOES, BAGS, WOMEN = "Shoes", "Bags", "Women's Clothing"
TRICKY = ["Women's Clothing", 'TVs 55" & up', "Tools \\ Hardware", 'Men\'s "Big & Tall" \\ Suits', "Café Crème"]

OpenIndex = Callable[..., ImageIndex]


def unit(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)


@pytest.fixture(params=["lite", "server"])
def open_index(request, tmp_path) -> Iterator[OpenIndex]:
    """``open_index(**kwargs)`` opens an ImageIndex on this test's own file or collection."""
    if request.param == "lite":
        uri, collection = str(tmp_path / "images.db"), "product_images"
    else:
        uri, collection = request.getfixturevalue("milvus_server"), f"images_{uuid.uuid4().hex[:12]}"
    opened: list[ImageIndex] = []

    def open_(**kwargs) -> ImageIndex:
        index = ImageIndex(uri, **{"collection": collection, "dim": DIM, **kwargs})
        opened.append(index)
        return index

    yield open_
    if opened:
        opened[-1].drop()
    for index in opened:
        index.close()


@pytest.fixture
def catalogue() -> list[ImageVector]:
    """30 random products in three level-2 categories, plus near-duplicates of shoe-0 and bag-0."""
    rng = np.random.default_rng(7)
    vectors = unit(rng.standard_normal((30, DIM)))
    items = [ImageVector(f"{cat.lower()[:4]}-{i}", vectors[j * 10 + i], "Fashion", cat, "m1")
             for j, cat in enumerate([SHOES, BAGS, WOMEN]) for i in range(10)]
    items.append(ImageVector("shoe-0-dup", unit(vectors[0] + 0.05 * rng.standard_normal(DIM)), "Fashion", SHOES, "m1"))
    items.append(ImageVector("bags-0-dup", unit(vectors[10] + 0.05 * rng.standard_normal(DIM)), "Fashion", BAGS, "m1"))
    return items


def test_quote_literal_escapes_quotes_and_backslashes():
    assert quote_literal("Women's Clothing") == '"Women\'s Clothing"'
    assert quote_literal('a"b\\c') == '"a\\"b\\\\c"'
    with pytest.raises(InvalidRecord, match="control characters"):
        quote_literal("bad\x00value")


def test_upsert_is_idempotent_and_latest_wins(open_index):
    index = open_index()
    first, second = unit(np.eye(DIM)[:2])
    assert index.upsert([ImageVector("p1", first, "A", "A1", "m1")]) == 1
    assert index.upsert([ImageVector("p1", second, "B", "B1", "m2")]) == 1
    # a repeated id inside one batch is one row too (the last one)
    assert index.upsert([ImageVector("p2", first, "A", "A1", "m1"), ImageVector("p2", second, "B", "B2", "m2")]) == 1
    assert index.count() == 2
    p1, p2 = index.get(["p1", "p2"])
    assert (p1.level1, p1.level2, p1.model_version) == ("B", "B1", "m2")
    assert np.allclose(p1.vector, second) and np.allclose(p2.vector, second) and p2.level2 == "B2"


def test_get_delete_count(open_index, catalogue):
    index = open_index()
    assert index.upsert(catalogue) == len(catalogue) == index.count()
    got = index.get(["bags-3", "nope", "shoe-1"])
    assert [g.id for g in got] == ["bags-3", "shoe-1"]  # asked order, unknown skipped
    assert np.allclose(got[0].vector, catalogue[13].vector, atol=1e-6) and got[0].level2 == BAGS
    assert index.delete(["shoe-1", "nope"]) == 1
    assert index.count() == len(catalogue) - 1
    assert index.get(["shoe-1"]) == []
    assert all(n.id != "shoe-1" for n in index.search(catalogue[1].vector, level2=None, k=50))


def test_filtered_search_ranks_identical_first(open_index, catalogue):
    index = open_index()
    index.upsert(catalogue)
    hits = index.search(catalogue[0].vector, level2=SHOES, k=5)
    assert [h.id for h in hits[:2]] == ["shoe-0", "shoe-0-dup"]
    assert hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert hits[0].score >= hits[1].score >= hits[-1].score
    assert all(h.level2 == SHOES and h.level1 == "Fashion" for h in hits)
    unfiltered = index.search(catalogue[10].vector, level2=None, k=3)
    assert [h.id for h in unfiltered[:2]] == ["bags-0", "bags-0-dup"]


def test_exclude_id_and_k_larger_than_filtered_set(open_index, catalogue):
    index = open_index()
    index.upsert(catalogue)
    hits = index.search(catalogue[0].vector, level2=SHOES, k=100, exclude_id="shoe-0")
    assert len(hits) == 10  # 11 shoes, itself excluded
    assert hits[0].id == "shoe-0-dup"
    assert {h.level2 for h in hits} == {SHOES}
    assert index.search(catalogue[0].vector, level2="No such category", k=10) == []


def test_level2_with_quotes_apostrophes_and_backslashes(open_index):
    index = open_index()
    rng = np.random.default_rng(3)
    items = [ImageVector(f"q{i}'\"{j}", unit(rng.standard_normal(DIM)), "L1", cat, "m1")
             for i, cat in enumerate(TRICKY) for j in range(3)]
    index.upsert(items)
    for i, cat in enumerate(TRICKY):
        hits = index.search(items[3 * i].vector, level2=cat, k=10)
        assert {h.level2 for h in hits} == {cat}
        assert len(hits) == 3 and hits[0].id == items[3 * i].id
    # ids with quotes go through the same escaping (get, delete, exclude_id)
    assert [v.id for v in index.get([items[0].id])] == [items[0].id]
    assert len(index.similar(items[0].id, k=10)) == 2


def test_similar(open_index, catalogue):
    index = open_index()
    index.upsert(catalogue)
    hits = index.similar("bags-0", k=100)
    assert hits[0].id == "bags-0-dup" and len(hits) == 10
    assert "bags-0" not in {h.id for h in hits} and {h.level2 for h in hits} == {BAGS}
    everywhere = index.similar("bags-0", k=100, within_level2=False)
    assert len(everywhere) == len(catalogue) - 1 and {h.level2 for h in everywhere} == {SHOES, BAGS, WOMEN}
    with pytest.raises(NotFound, match="'unknown-product'"):
        index.similar("unknown-product")


def test_dimension_mismatch_names_expected_and_received(open_index):
    index = open_index()
    with pytest.raises(InvalidRecord, match=f"dim {DIM}.*Received dim 7"):
        index.upsert([ImageVector("p", np.ones(7, np.float32), "A", "B", "m")])
    with pytest.raises(InvalidRecord, match=f"dim {DIM}.*Received dim {DIM + 1}"):
        index.search(np.ones(DIM + 1, np.float32), level2=None)
    with pytest.raises(InvalidRecord, match="non-zero"):
        index.search(np.zeros(DIM, np.float32), level2=None)
    with pytest.raises(ConfigError, match=f"stores {DIM}-d vectors, but dim=1280"):
        open_index(dim=1280)


def test_reopen_sees_the_data(open_index, catalogue):
    index = open_index()
    index.upsert(catalogue)
    index.delete(["shoe-2"])
    index.close()
    # a separate process: Milvus Lite must have the rows on disk, not only in this process
    script = ("import sys; from embedder.index import ImageIndex; "
              "ix = ImageIndex(sys.argv[1], collection=sys.argv[2], dim=int(sys.argv[3])); "
              "print(ix.count(), ix.similar('shoe-0', k=1)[0].id); ix.close()")
    out = subprocess.run([sys.executable, "-c", script, index.uri, index.collection, str(DIM)],
                         capture_output=True, text=True, timeout=120, cwd=str(ROOT))
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == [str(len(catalogue) - 1), "shoe-0-dup"]
    reopened = open_index()
    assert reopened.count() == len(catalogue) - 1
    assert reopened.get(["shoe-2"]) == []


def test_recall_at_10_against_exact_cosine(open_index):
    rng = np.random.default_rng(11)
    dim, n, queries = 128, 5_000, 100
    vectors = unit(rng.standard_normal((n, dim)))
    index = open_index(dim=dim)
    index.upsert(ImageVector(f"v{i}", vectors[i], "L1", "all", "m1") for i in range(n))
    index.flush()  # seal the segment and wait, so the server searches the built index
    probe = unit(rng.standard_normal((queries, dim)))
    exact = np.argsort(-(probe @ vectors.T), axis=1)[:, :10]
    found = [{h.id for h in index.search(q, level2="all", k=10)} for q in probe]
    recall = np.mean([len(f & {f"v{i}" for i in row}) / 10 for f, row in zip(found, exact)])
    assert recall >= 0.95, f"recall@10 = {recall:.3f} with {index.index_type}"
