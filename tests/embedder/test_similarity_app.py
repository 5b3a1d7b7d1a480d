"""The similarity web app over a tiny hand-made Milvus Lite index (random unit vectors), through
aiohttp's real test server and client."""

from __future__ import annotations

import asyncio
import io
import os
import re
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from PIL import Image

from embedder import ImageFetcher, ImageIndex, ImageVector
from embedder.judgements import JudgementStore
from embedder.similarity_app import product_table, similarity_app
from prodcat.commands.embedder import serve_similarity
from prodcat.errors import ConfigError
from prodcat.taxonomy import Taxonomy, path_id

DIM = 8
LEVEL2S = ("Shoes", "Bags")
TOKEN = "judges-shared-secret"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def index(tmp_path):
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((10, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    opened = ImageIndex(str(tmp_path / "images.db"), dim=DIM)
    opened.upsert(ImageVector(f"p{i}", vectors[i], "Fashion", LEVEL2S[i % 2], "m1") for i in range(10))
    yield opened
    opened.close()


@pytest.fixture
def store(tmp_path):
    opened = JudgementStore(tmp_path / "judgements.sqlite")
    yield opened
    opened.close()


@pytest.fixture
def images(tmp_path) -> Path:
    root = tmp_path / "images"
    root.mkdir()
    Image.new("RGB", (6, 8), (200, 30, 30)).save(root / "p0.jpg")
    return root


@pytest.fixture
def products(images, tmp_path) -> dict[str, dict]:
    outside = tmp_path / "secret.jpg"
    Image.new("RGB", (4, 4)).save(outside)
    table = {f"p{i}": {"id": f"p{i}", "title": f"{LEVEL2S[i % 2][:-1]} number {i}", "category": f"Fashion > {LEVEL2S[i % 2]}",
                       "image_url": None} for i in range(10)}
    table["p0"]["image_url"] = (images / "p0.jpg").as_uri()
    table["p1"]["image_url"] = outside.as_uri()  # not under the image root: never served
    table["p2"]["image_url"] = str(images / ".." / "secret.jpg")  # a path escaping the root
    return table


def serve(app: web.Application, scenario: Callable[[TestClient], Awaitable[None]]) -> None:
    async def main() -> None:
        async with TestClient(TestServer(app)) as client:
            await scenario(client)

    asyncio.run(main())


def test_similar_endpoint(index, store, images, products):
    async def scenario(client: TestClient) -> None:
        resp = await client.get("/similar/p0?k=3")
        assert resp.status == 200
        hits = await resp.json()
        assert [h["rank"] for h in hits] == [1, 2, 3]
        assert all(h["level2"] == "Shoes" and h["id"] != "p0" for h in hits)
        assert set(hits[0]) == {"rank", "id", "score", "level1", "level2", "level2_name", "title"}
        assert hits[0]["title"] == products[hits[0]["id"]]["title"]
        scores = [h["score"] for h in hits]
        assert scores == sorted(scores, reverse=True)
        expected = index.similar("p0", k=3)
        assert [h["id"] for h in hits] == [n.id for n in expected]

        everywhere = await (await client.get("/similar/p0?k=9&everywhere=1")).json()
        assert len(everywhere) == 9 and {h["level2"] for h in everywhere} == set(LEVEL2S)
        assert len(await (await client.get("/similar/p0")).json()) == 4  # default k=100: all other shoes

        missing = await client.get("/similar/nope")
        assert missing.status == 404 and "no image vector" in (await missing.json())["error"]
        for bad in ("k=0", "k=abc", "k=20000", "everywhere=maybe"):
            resp = await client.get(f"/similar/p0?{bad}")
            assert resp.status == 400, bad
            assert "expected" in (await resp.json())["error"]

    serve(similarity_app(index, store, images, products), scenario)


def test_product_lookup(index, store, images, products):
    products = {**products, **{f"x{i}": {"id": f"x{i}", "title": "Shoe extra", "image_url": None}
                               for i in range(30)}}

    async def scenario(client: TestClient) -> None:
        found = await (await client.get("/products", params={"q": "NUMBER 3"})).json()
        assert found == [{"id": "p3", "title": "Bag number 3", "category": "Fashion > Bags"}]
        assert len(await (await client.get("/products", params={"q": "shoe"})).json()) == 20  # capped
        exact = await (await client.get("/products", params={"q": "p1"})).json()
        assert exact[0]["id"] == "p1"
        assert await (await client.get("/products", params={"q": " "})).json() == []

        one = await (await client.get("/products/p4")).json()
        assert one["indexed"] is True and (one["level1"], one["level2"]) == ("Fashion", "Shoes")
        unindexed = await (await client.get("/products/x1")).json()
        assert unindexed["indexed"] is False and unindexed["level2"] is None
        assert (await client.get("/products/none")).status == 404

        picked = await (await client.get("/random")).json()
        assert picked["id"] in {f"p{i}" for i in range(10)}  # only products with a vector

    serve(similarity_app(index, store, images, products), scenario)


def test_products_as_a_lookup_callable(index, store, products):
    async def scenario(client: TestClient) -> None:
        assert [p["id"] for p in await (await client.get("/products?q=p5")).json()] == ["p5"]
        assert await (await client.get("/products?q=number")).json() == []  # no search without a table
        assert (await client.get("/random")).status == 404

    serve(similarity_app(index, store, None, products.get), scenario)


def test_judgements_round_trip_and_summary(index, store, images, products):
    async def post(client: TestClient, query: str, neighbour: str, rank: int, good: bool, judge: str = "ann"):
        return await client.post("/judgements", json={"query_id": query, "neighbour_id": neighbour, "rank": rank,
                                                      "good": good, "judge": judge})

    async def scenario(client: TestClient) -> None:
        # p0 is a shoe: three good, one bad; then rank 2 is changed to bad (upsert, not a new row)
        for rank, (neighbour, good) in enumerate([("p2", True), ("p4", True), ("p6", True), ("p8", False)], 1):
            resp = await post(client, "p0", neighbour, rank, good)
            assert resp.status == 201
            body = await resp.json()
            assert body["level2"] == "Shoes" and body["good"] is good and body["time"] > 0
        assert (await post(client, "p0", "p4", 2, False)).status == 201
        # another judge on the same pair is a separate row; a bag query counts for Bags, rank 5 only for k >= 5
        await post(client, "p0", "p2", 1, True, judge="bob")
        await post(client, "p1", "p3", 1, True)
        await post(client, "p1", "p5", 5, False)

        ann = await (await client.get("/judgements", params={"query_id": "p0", "judge": "ann"})).json()
        assert [(j["neighbour_id"], j["rank"], j["good"]) for j in ann] == [
            ("p2", 1, True), ("p4", 2, False), ("p6", 3, True), ("p8", 4, False)]
        assert len(await (await client.get("/judgements", params={"query_id": "p0"})).json()) == 5

        full = await (await client.get("/judgements/summary")).json()
        assert full == {"Bags": {"queries": 1, "judged": 2, "good": 1, "precision_at_k": 0.5, "name": "Bags"},
                        "Shoes": {"queries": 1, "judged": 5, "good": 3, "precision_at_k": 0.6, "name": "Shoes"}}
        top3 = await (await client.get("/judgements/summary?k=3")).json()
        assert top3["Shoes"] == {"queries": 1, "judged": 4, "good": 3, "precision_at_k": 0.75, "name": "Shoes"}
        assert top3["Bags"]["precision_at_k"] == 1.0

        # refused: wrong types, unknown query, not JSON (a cross-site form post)
        bad = await client.post("/judgements", json={"query_id": "p0", "neighbour_id": "p2", "rank": "1",
                                                     "good": "yes", "judge": "ann"})
        assert bad.status == 400 and "rank, good" in (await bad.json())["error"]
        assert (await post(client, "p0", "p2", 0, True)).status == 400
        assert (await post(client, "p0", "p2", 1, True, judge=" ")).status == 400
        assert (await post(client, "nope", "p2", 1, True)).status == 404
        form = await client.post("/judgements", data={"query_id": "p0"})
        assert form.status == 415
        assert (await client.get("/judgements")).status == 400

    serve(similarity_app(index, store, images, products), scenario)
    assert store.summary()["Shoes"]["judged"] == 5  # it is all in the SQLite file


def test_judgement_store_persists(tmp_path):
    path = tmp_path / "j.sqlite"
    store = JudgementStore(path)
    store.record("q", "n1", judge="ann", level2="Shoes", rank=1, good=True, at=1.0)
    store.record("q", "n2", judge="ann", level2="Shoes", rank=2, good=False, at=2.0)
    store.close()
    reopened = JudgementStore(path)
    assert [(j.neighbour_id, j.good, j.time) for j in reopened.for_query("q")] == [("n1", True, 1.0), ("n2", False, 2.0)]
    assert reopened.summary(k=1) == {"Shoes": {"queries": 1, "judged": 1, "good": 1, "precision_at_k": 1.0}}
    with pytest.raises(ValueError, match="rank >= 1"):
        reopened.record("q", "n3", judge="ann", level2="Shoes", rank=0, good=True)
    reopened.close()


def test_images_served_only_from_the_root_or_through_the_fetcher(index, store, images, products):
    photo = io.BytesIO()
    Image.new("RGB", (900, 600), (10, 120, 200)).save(photo, format="PNG")

    async def scenario(client: TestClient) -> None:
        # a local image server: loopback, so the default fetcher must refuse it
        async def shoe(request: web.Request) -> web.Response:
            return web.Response(body=photo.getvalue(), content_type="image/png")

        remote = web.Application()
        remote.router.add_get("/shoe.png", shoe)
        async with TestClient(TestServer(remote, host="127.0.0.1")) as image_host:
            products["p3"]["image_url"] = str(image_host.make_url("/shoe.png"))

            resp = await client.get("/images/p0")
            assert resp.status == 200 and resp.content_type == "image/jpeg"
            assert Image.open(io.BytesIO(await resp.read())).size == (6, 8)
            for outside in ("p1", "p2", "p5", "unknown"):  # outside the root, escaping it, no image, no product
                assert (await client.get(f"/images/{outside}")).status == 404, outside

            refused = await client.get("/images/p3", allow_redirects=False)
            assert refused.status == 404 and "refused: loopback" in (await refused.json())["error"]

        # with a fetcher that trusts loopback, the picture is fetched and re-encoded, never redirected to
        async with TestClient(TestServer(remote, host="127.0.0.1")) as image_host:
            products["p3"]["image_url"] = str(image_host.make_url("/shoe.png"))
            trusting = similarity_app(index, store, images, products,
                                      fetcher=ImageFetcher(allowed_networks=["127.0.0.0/8"]))
            async with TestClient(TestServer(trusting)) as other:
                resp = await other.get("/images/p3", allow_redirects=False)
                assert resp.status == 200 and resp.content_type == "image/jpeg" and "Location" not in resp.headers
                assert Image.open(io.BytesIO(await resp.read())).size == (512, 341)

    serve(similarity_app(index, store, images, products), scenario)


def test_judge_page_is_self_contained(index, store, images, products):
    async def scenario(client: TestClient) -> None:
        home = await client.get("/", allow_redirects=False)
        assert home.status == 302 and home.headers["Location"] == "/judge"
        resp = await client.get("/judge")
        assert resp.status == 200 and resp.content_type == "text/html"
        html = await resp.text()
        csp = resp.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp  # no inline code at all
        # nothing from another host: the machine is offline and judges' browsers should not leak
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
        assert 'id="search"' in html and 'id="summary"' in html and "<style" not in html
        scripts = re.findall(r'<script src="/static/([\w.]+)"></script>', html)
        styles = re.findall(r'<link rel="stylesheet" href="/static/([\w.]+)">', html)
        assert scripts == ["dom.js", "judge.js"] and styles == ["theme.css", "judge.css"]
        for name in scripts + styles:
            asset = await client.get(f"/static/{name}")
            assert asset.status == 200, name
            text = await asset.text()
            assert "innerHTML" not in text and not re.search(r"https?://", text), name

    serve(similarity_app(index, store, images, products), scenario)


def test_product_table_from_catalogue_records(tmp_path):
    raws = [{"id": "1", "title": "Red <b>Shoe</b>", "category": "Footwear > Shoes > Casual", "image_url": "file:///x/1.jpg"},
            {"id": "2", "title": "Leather tote", "category": "Accessories > Bags"},
            {"title": "no id"}]
    table = product_table(raws)
    shoes, bags = path_id(["Footwear", "Shoes"]), path_id(["Accessories", "Bags"])  # the ids the index holds
    assert table == {"1": {"id": "1", "title": "Red Shoe", "image_url": "file:///x/1.jpg",
                           "category": "Footwear > Shoes > Casual", "level2": shoes, "level2_name": "Shoes"},
                     "2": {"id": "2", "title": "Leather tote", "image_url": None, "category": "Accessories > Bags",
                           "level2": bags, "level2_name": "Bags"}}
    explicit = Taxonomy([("1", ["Footwear"]), ("7", ["Footwear", "Shoes"])])
    assert [(row["level2"], row["level2_name"]) for row in product_table(raws, explicit).values()] == [
        ("7", "Shoes"), (None, None)]


# --- access ------------------------------------------------------------------------------------

def _mark(judge: str = "ann") -> dict:
    return {"query_id": "p0", "neighbour_id": "p2", "rank": 1, "good": True, "judge": judge}


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "judge.example.com"])
def test_non_loopback_bind_without_token_is_refused(index, store, products, host):
    with pytest.raises(ConfigError, match="not a loopback address.*--token.*PRODCAT_SIMILARITY_TOKEN"):
        similarity_app(index, store, None, products, host=host)
    with pytest.raises(ConfigError, match="--token"):  # the command refuses before reading or opening anything
        serve_similarity(catalogue=Path("/no/such/catalogue.csv"), preset="auto", port=8088, host=host,
                         judgements=None, token=None)


def test_the_command_refuses_a_network_bind_without_a_token():
    env = {k: v for k, v in os.environ.items() if k != "PRODCAT_SIMILARITY_TOKEN"}
    proc = subprocess.run([sys.executable, "-m", "prodcat", "similar-ui", "README.md", "--host", "0.0.0.0"],
                          capture_output=True, text=True, env=env, timeout=120, cwd=ROOT)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode != 0 and len(lines) == 1, proc.stderr
    assert "not a loopback address" in lines[0] and "--token" in lines[0]


def test_with_a_token_every_request_needs_it(index, store, images, products):
    async def scenario(client: TestClient) -> None:
        for method, path in [("GET", "/judge"), ("GET", "/static/judge.js"), ("GET", "/similar/p0"),
                             ("GET", "/products?q=p"), ("GET", "/images/p0"), ("GET", "/judgements/summary"),
                             ("POST", "/judgements")]:
            resp = await client.request(method, path, json=_mark("mallory"))
            assert resp.status == 401, (method, path)
            assert "needs its token" in (await resp.json())["error"]
        wrong = await client.post("/judgements", json=_mark("mallory"), headers={"Authorization": "Bearer guess1234"})
        assert wrong.status == 401
        assert store.summary() == {}  # nothing changed without the token
        right = await client.post("/judgements", json=_mark(), headers={"Authorization": f"Bearer {TOKEN}"})
        assert right.status == 201
        # a judge opens the page once with the token: a cookie, then the page and its API work
        opened = await client.get(f"/judge?token={TOKEN}", allow_redirects=False)
        assert opened.status == 302 and opened.headers["Location"] == "/judge"
        assert (await client.get("/judge")).status == 200
        assert (await client.post("/judgements", json=_mark("bob"))).status == 201

    serve(similarity_app(index, store, images, products, host="0.0.0.0", token=TOKEN), scenario)
    assert store.summary()["Shoes"]["judged"] == 2


def test_loopback_refuses_other_hosts_and_origins(index, store, images, products):
    async def scenario(client: TestClient) -> None:
        own = f"http://127.0.0.1:{client.port}"
        assert (await client.get("/judge")).status == 200
        assert (await client.post("/judgements", json=_mark(), headers={"Origin": own})).status == 201
        for path in ("/judge", "/judgements/summary", "/similar/p0", "/images/p0"):
            resp = await client.get(path, headers={"Host": "evil.example"})
            assert resp.status == 403, path
            assert "expected a Host header" in (await resp.json())["error"]
        for origin in ("http://evil.example", f"http://127.0.0.1:{client.port + 1}", "null"):
            resp = await client.post("/judgements", json=_mark("mallory"), headers={"Origin": origin})
            assert resp.status == 403, origin
            assert "Origin" in (await resp.json())["error"]
        resp = await client.post("/judgements", json=_mark("mallory"), headers={"Host": "evil.example"})
        assert resp.status == 403

    serve(similarity_app(index, store, images, products), scenario)
    assert [m.judge for m in store.for_query("p0")] == ["ann"]  # the refused ones changed nothing
