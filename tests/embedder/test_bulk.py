"""embed_catalogue and the `embed` / `similar` commands on real Myntra photos, the real
EfficientNet-Lite0 embedder and Milvus Lite (plus the real Redis of the stack for the cache)."""

from __future__ import annotations

import shutil
import uuid
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

import prodcat.commands.embedder as embedder_cli
from embedder import EfficientNetLite0Embedder, Embedder, ImageFetcher, ImageIndex, VectorCache
from embedder.bulk import EmbedReport, embed_catalogue, level_ids
from prodcat.catalogue import read_catalogue
from prodcat.categoriser import Categorisation
from prodcat.errors import NotFound, ProdcatError
from prodcat.record import ProductRecord
from prodcat.taxonomy import Taxonomy, path_id
from runtime.deadletter import RawEvent
from streams.pipeline import Classified, level_categories

LEVEL2S = ("Topwear", "Shoes", "Bags", "Bottomwear", "Watches")
PER_LEVEL2 = 8


def myntra_sample(datasets: Path, per_level2: int = PER_LEVEL2, level2s=LEVEL2S) -> list[dict]:
    """The first ``per_level2`` products of each level-2 category in the Myntra photo set."""
    taken: Counter[str] = Counter()
    sample = []
    for raw in read_catalogue(datasets / "myntra" / "images.csv", preset="myntra-images"):
        level2 = raw["category"].split(" > ")[1]
        if level2 in level2s and taken[level2] < per_level2:
            taken[level2] += 1
            sample.append(raw)
            if len(sample) == per_level2 * len(level2s):
                break
    return sample


@pytest.fixture(scope="module")
def model() -> EfficientNetLite0Embedder:
    return EfficientNetLite0Embedder()  # ~5 s: one per module


@pytest.fixture(scope="module")
def sample(datasets) -> list[dict]:
    return myntra_sample(datasets)


@pytest.fixture
def index(tmp_path):
    opened = ImageIndex(str(tmp_path / "images.db"))
    yield opened
    opened.close()


@pytest.fixture
def broken(tmp_path) -> list[dict]:
    """A missing file, a file that is not an image and a product without an image."""
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"<html>not a picture</html>")
    base = {"title": "Broken", "category": "Apparel > Topwear > Tshirts", "network": "myntra-feed"}
    return [{**base, "id": "missing", "image_url": (tmp_path / "nope.jpg").as_uri()},
            {**base, "id": "junk", "image_url": junk.as_uri()},
            {**base, "id": "no-url"}]


def test_embeds_real_photos_and_reports_broken_ones(model, sample, broken, index):
    records = sample[:17] + broken + sample[17:]  # failures in the middle of a batch
    seen: list[int] = []

    report = embed_catalogue(records, embedder=model, index=index, batch_size=16,
                             on_progress=lambda r: seen.append(r.processed))

    assert (report.embedded, report.cached, report.failed) == (len(sample), 0, 3)
    assert report.reasons == {"not found": 1, "not an image": 1, "no image url": 1}
    assert dict(report.examples) == {"missing": "not found", "junk": "not an image: unrecognised file signature",
                                     "no-url": "no image url"}
    assert seen == [16, 32, len(records)]
    assert index.count() == len(sample)
    assert report.summary().startswith(f"embedded {len(sample)}, from cache 0, failed 3 (")

    rows = {row.id: row for row in index.get([r["id"] for r in sample])}
    for raw in sample:
        level1, level2, _ = raw["category"].split(" > ")
        row = rows[raw["id"]]  # category ids, as the stream writes them
        assert (row.level1, row.level2, row.model_version) == (path_id([level1]), path_id([level1, level2]),
                                                               model.version)
    # each stored vector is the embedding of that product's own photo
    fetcher = ImageFetcher(allow_local_files=True)
    for raw in sample[::13]:
        expected = model.embed([fetcher.fetch(raw["image_url"]).image])[0]
        assert np.allclose(rows[raw["id"]].vector, expected, atol=1e-5)

    same_when_filtered, same_everywhere = 0, 0
    for raw in sample:
        level2 = rows[raw["id"]].level2
        (nearest,) = index.similar(raw["id"], k=1)
        assert nearest.level2 == level2 and nearest.id != raw["id"] and 0 < nearest.score <= 1.0001
        same_when_filtered += 1
        (anywhere,) = index.similar(raw["id"], k=1, within_level2=False)
        same_everywhere += anywhere.level2 == level2
    # the embedding itself separates shirts, shoes, bags, trousers and watches
    assert same_everywhere / len(sample) >= 0.75, same_everywhere


def test_records_without_level2_are_reported(model, index, sample):
    flat = {**sample[0], "id": "flat", "category": "Apparel"}
    report = embed_catalogue([flat], embedder=model, index=index)
    assert report.failed == 1 and report.reasons == {"no level-2 category": 1} and index.count() == 0


def test_level_ids_are_the_ids_the_stream_writes():
    """The same product gets the same level1/level2 from `prodcat embed` and from the worker."""
    path = ["Footwear", "Shoes", "Casual Shoes"]
    tree = Taxonomy.from_paths([path, ["Apparel", "Topwear"]])  # how training and the demo build it
    item = Classified(RawEvent(b"{}", key=b"p", topic="products.raw", partition=0, offset=0),
                      ProductRecord(id="p", category_path=path),
                      Categorisation(categories=[tree.find(path[:1]), tree.find(path[:2]), tree.find(path)],
                                     scores={}))
    assert level_ids(path) == level_categories(item, tree) == (tree.find(path[:1]), tree.find(path[:2]))
    # an explicit taxonomy (its own ids): looked up in it; a path it does not hold is no row
    google = Taxonomy([("1", ["Footwear"]), ("17", ["Footwear", "Shoes"])])
    assert level_ids(path, google) == ("1", "17")
    assert level_ids(["Apparel", "Topwear"], google) is None and level_ids(["Footwear"]) is None


def test_a_path_outside_the_taxonomy_is_reported(model, index, sample):
    google = Taxonomy([("1", ["Apparel"]), ("2", ["Apparel", "Topwear"])])
    shirt = next(raw for raw in sample if raw["category"].startswith("Apparel > Topwear"))
    shoe = next(raw for raw in sample if " > Shoes > " in raw["category"])
    report = embed_catalogue([shirt, shoe], embedder=model, index=index, taxonomy=google)
    assert report.embedded == 1 and report.reasons == {"level-2 category not in the taxonomy": 1}
    assert [(row.level1, row.level2) for row in index.get([shirt["id"]])] == [("1", "2")]


class CountingEmbedder(Embedder):
    """The real model, counting the images it is asked to embed."""

    def __init__(self, inner: Embedder) -> None:
        self.inner, self.images = inner, 0

    @property
    def version(self) -> str:
        return self.inner.version

    @property
    def dim(self) -> int:
        return self.inner.dim

    def embed(self, images):
        self.images += len(images)
        return self.inner.embed(images)


@pytest.mark.integration
def test_second_run_with_cache_embeds_nothing(model, sample, broken, tmp_path, stack):
    import redis

    client = redis.Redis.from_url(stack.redis_url, **stack.redis_kwargs())
    cache = VectorCache(client, namespace=f"test:{uuid.uuid4().hex[:8]}")
    # the same picture under another URL (and product): known by its content hash
    copy = tmp_path / "copy.jpg"
    shutil.copy(url2pathname(urlsplit(sample[0]["image_url"]).path), copy)
    twin = {**sample[0], "id": "twin", "image_url": copy.as_uri()}
    try:
        first = CountingEmbedder(model)
        with_cache = ImageIndex(str(tmp_path / "first.db"))
        report1 = embed_catalogue(sample + broken, embedder=first, index=with_cache, cache=cache)
        assert (report1.embedded, report1.cached, report1.failed) == (len(sample), 0, 3)
        assert first.images == len(sample)

        second = CountingEmbedder(model)
        again = ImageIndex(str(tmp_path / "second.db"))
        report2 = embed_catalogue(sample + broken + [twin], embedder=second, index=again, cache=cache)
        assert (report2.embedded, report2.cached, report2.failed) == (0, len(sample) + 1, 3)
        assert second.images == 0
        assert again.count() == len(sample) + 1
        ids = [r["id"] for r in sample]
        for a, b in zip(with_cache.get(ids), again.get(ids)):
            assert a.id == b.id and np.array_equal(a.vector, b.vector)
        assert np.array_equal(again.get(["twin"])[0].vector, again.get([sample[0]["id"]])[0].vector)
        # the twin's URL is now known too: a third run skips even its download
        assert cache.get_by_url(copy.as_uri(), model.version) is not None
        with_cache.close()
        again.close()
    finally:
        client.close()


# --- commands ---------------------------------------------------------------------------------

def _app() -> typer.Typer:
    """The commands registered the way prodcat/cli.py does."""
    app = typer.Typer()
    app.command()(embedder_cli.embed)
    app.command()(embedder_cli.similar)
    return app


def test_embed_and_similar_commands(model, datasets, tmp_path, monkeypatch):
    monkeypatch.setenv("PRODCAT_MILVUS_URI", str(tmp_path / "cli.db"))
    monkeypatch.setattr(embedder_cli, "load_embedder", lambda image_size, batch_size: model)
    catalogue = datasets / "myntra" / "images.csv"
    runner = CliRunner()

    result = runner.invoke(_app(), ["embed", str(catalogue), "--preset", "myntra-images", "--limit", "12"])
    assert result.exit_code == 0, result.output
    assert "embedded 12, from cache 0, failed 0" in result.output

    first_id = next(read_catalogue(catalogue, "myntra-images"))["id"]
    result = runner.invoke(_app(), ["similar", first_id, "--k", "3"])
    assert result.exit_code == 0, result.output
    assert f"most similar to {first_id}" in result.output
    assert [line.split("│")[1].strip() for line in result.output.splitlines()
            if line.startswith("│")] == ["1", "2", "3"]


def test_commands_raise_one_line_prodcat_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("PRODCAT_MILVUS_URI", str(tmp_path / "cli.db"))
    app = _app()
    with pytest.raises(ProdcatError, match="does not exist"):
        app(["embed", str(tmp_path / "missing.csv")], standalone_mode=False)
    with pytest.raises(NotFound, match="no image vector"):
        app(["similar", "no-such-product"], standalone_mode=False)
    monkeypatch.setenv("PRODCAT_MILVUS_URI", "http://127.0.0.1:1")  # nothing listens on port 1
    with pytest.raises(ProdcatError, match="PRODCAT_MILVUS_URI"):
        app(["similar", "42"], standalone_mode=False)


def test_report_summary_groups_reasons():
    report = EmbedReport()
    for reason in ("too large: 11 bytes > 10", "too large: 12 bytes > 10", "http 404"):
        report.fail("p", reason)
    assert report.summary() == "embedded 0, from cache 0, failed 3 (too large: 2, http 404: 1)"
