"""The labelling tool: requests from real Kafka, labelled by keyboard in headless Chromium, labels
read back from labelling.labels; and its access rules (token off loopback, 401 without it)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from confluent_kafka import Producer

from embedder.fetch import ImageFetcher
from prodcat.categoriser import Categorisation
from prodcat.commands.retrain import label_ui
from prodcat.errors import ConfigError
from prodcat.record import parse_record
from prodcat.settings import Settings
from prodcat.taxonomy import Taxonomy
from retrain.label_store import parse_label
from retrain.labelling_queue import RequestQueue
from retrain.labelling_tool import check_bind, labelling_app
from runtime.deadletter import RawEvent
from streams.labelling import Candidate, request_message
from streams.pipeline import Classified
from streams.topics import ensure_topics
from tests.embedder.cdp import Browser, chromium_path, keep_screenshot
from tests.helpers import drain

ROOT = Path(__file__).resolve().parents[2]
MYNTRA = ROOT.parent / "shared" / "datasets" / "myntra" / "images"
TAXONOMY = Taxonomy.from_json((ROOT / "prodcat" / "data" / "demo_taxonomy.json").read_text(encoding="utf-8"))
ID = {" > ".join(TAXONOMY.path(c)): c for c in TAXONOMY.ids}


def _request(product: dict, scores: dict[str, float], decided: list[str], priority: float) -> bytes:
    """A labelling.requests value exactly as the worker builds it."""
    record = parse_record(product)
    ids = {ID[path]: score for path, score in scores.items()}
    result = Categorisation(categories=[ID[p] for p in decided], scores=ids,
                            explanation={ID[p]: [f"rule:{p.split(' > ')[-1].lower()}"] for p in decided},
                            uncertainty=priority, disagreement=0.1)
    cand = Candidate(Classified(RawEvent(json.dumps(product).encode()), record, result),
                     f"uncertainty {priority:.2f}", priority, p=round(priority / 10, 4), claim="test")
    return request_message(cand, TAXONOMY, "rules-demo")


def _image(name: str) -> str | None:
    path = MYNTRA / name
    return str(path) if path.is_file() else None  # without the shared datasets: "no image"


REQUESTS = [  # (product id, value); priorities 0.9 > 0.8 > 0.7 give the order on the page
    ("shoe-1590", _request({"id": "shoe-1590", "title": "Kipsta Men's F300 Football Shoe", "brand": "Kipsta",
                            "category": "Footwear // Shoes // Sports Shoes", "image_url": _image("1590.jpg"),
                            "description": "<p>Black football boots with moulded studs.</p>"},
                           {"Footwear": 0.91, "Footwear > Men's Footwear > Sports Shoes": 0.58,
                            "Footwear > Men's Footwear > Formal Shoes": 0.31},
                           ["Footwear"], 0.9)),
    ("watch-7", _request({"id": "watch-7", "title": "Titan Karishma analog watch", "brand": "Titan",
                          "category": "Accessories > Watches", "description": "Steel strap, date window."},
                         {"Watches": 0.74, "Watches > Smart Watches": 0.41}, ["Watches"], 0.8)),
    ("tee-1163", _request({"id": "tee-1163", "title": "Nike Sahara Team India Fanwear Round Neck Jersey",
                           "brand": "Nike", "category": "Apparel > Topwear > Tshirts", "image_url": _image("1163.jpg"),
                           "description": "Blue jersey, summer 2011."},
                          {"Clothing > Men's Clothing > Sweatshirts": 0.62, "Clothing": 0.6}, [], 0.7)),
]


async def _key(browser: Browser, key: str, code: str, vk: int, text: str | None = None) -> None:
    """A non-printable key (Enter, arrows), which ``Browser.press`` does not cover."""
    common = {"key": key, "code": code, "windowsVirtualKeyCode": vk}
    await browser.send("Input.dispatchKeyEvent", type="keyDown", **common, **({"text": text} if text else {}))
    await browser.send("Input.dispatchKeyEvent", type="keyUp", **common)


async def enter(browser: Browser) -> None:
    await _key(browser, "Enter", "Enter", 13, "\r")


async def arrow_down(browser: Browser) -> None:
    await _key(browser, "ArrowDown", "ArrowDown", 40)


SHOWN = "document.body.dataset.state === 'ready' && document.querySelector('#product')?.dataset.id"
MARKS = "[...document.querySelectorAll('#cats li')].map(li => [li.dataset.id, li.className])"


@pytest.mark.integration
@pytest.mark.skipif(chromium_path() is None, reason="chromium is not on PATH; apt-get install -y chromium")
def test_label_three_products_by_keyboard(isolated: Settings, tmp_path):
    ensure_topics(isolated)
    producer = Producer(isolated.kafka_client_config())
    for product_id, value in REQUESTS:
        producer.produce(isolated.topic_label_requests, key=product_id.encode(), value=value)
    assert producer.flush(30) == 0
    app = labelling_app(isolated, TAXONOMY, token=None, fetcher=ImageFetcher(allow_local_files=True))

    async def scenario() -> tuple[bytes, dict]:
        async with TestServer(app, host="127.0.0.1") as server, aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 60  # the tool's consumer group joins, then reads all three
            while (await (await http.get(server.make_url("/stats"))).json())["queue"] < 3:
                assert time.monotonic() < deadline, "the tool did not read the three requests"
                await asyncio.sleep(0.3)
            browser = await Browser.launch(tmp_path / "chromium")
            try:
                await browser.navigate(str(server.make_url("/")))
                await browser.wait_for("document.body.dataset.state === 'name'")
                assert await browser.evaluate("document.activeElement.id") == "whoname"
                await browser.type_text("ana")
                await enter(browser)

                # 1: accept the first proposed category (Footwear), submit
                await browser.wait_for(f"({SHOWN}) === 'shoe-1590'")
                assert await browser.evaluate("document.querySelector('#labeller').textContent") == "ana"
                await browser.press("1")
                assert (await browser.evaluate(MARKS))[0] == [ID["Footwear"], "yes"]
                await browser.wait_for("[...document.images].every(i => i.complete)")
                await enter(browser)

                # 2: accept Watches, add "Wrist Watches" from the tree ("/" + typing + Enter), submit
                await browser.wait_for(f"({SHOWN}) === 'watch-7'")
                await browser.press("1")
                await browser.press("/")
                assert await browser.evaluate("document.activeElement.id") == "search"
                await browser.type_text("wrist")
                await browser.wait_for("document.querySelector('#treelist li.hit.active')?.dataset.id === "
                                       f"{ID['Watches > Wrist Watches']!r}")
                await enter(browser)
                assert await browser.evaluate("document.activeElement.id") != "search"
                assert await browser.evaluate(MARKS) == [[ID["Watches"], "yes"], [ID["Watches > Smart Watches"], ""],
                                                         [ID["Watches > Wrist Watches"], "yes"]]
                await enter(browser)

                # 3: reject Sweatshirts (1 twice), add T-shirt's real home by filtering and arrows
                await browser.wait_for(f"({SHOWN}) === 'tee-1163'")
                await browser.press("1")
                await browser.press("1")
                await browser.press("/")
                await browser.type_text("men's clothing")  # Men's Clothing and its children, Women's too
                await browser.wait_for("document.querySelectorAll('#treelist li.hit').length > 3")
                hits = await browser.evaluate("[...document.querySelectorAll('#treelist li.hit')].map(l => l.title)")
                assert hits[0] == "Clothing > Men's Clothing"
                await arrow_down(browser)  # -> Clothing > Men's Clothing > Jeans; then back up
                await browser.wait_for("[...document.images].every(i => i.complete)")
                png = await browser.screenshot()  # the tree open, a category rejected
                await _key(browser, "ArrowUp", "ArrowUp", 38)
                await enter(browser)
                assert await browser.evaluate(MARKS) == [
                    [ID["Clothing > Men's Clothing > Sweatshirts"], "no"], [ID["Clothing"], ""],
                    [ID["Clothing > Men's Clothing"], "yes"]]
                await enter(browser)
                await browser.wait_for("document.body.dataset.state === 'empty'")
                assert await browser.evaluate("document.querySelector('#done').textContent") == "3"
            finally:
                await browser.close()
            stats = await (await http.get(server.make_url("/stats"))).json()
            return png, stats

    png, stats = asyncio.run(scenario())
    assert stats["labelled"] == 3 and stats["queue"] == 0 and stats["published"] == {"ana": 5}
    labels = [parse_label(m.value(), TAXONOMY, key=m.key()) for m in drain(isolated, isolated.topic_labels)]
    assert sorted((lb.product_id, TAXONOMY.path_str(lb.category), lb.positive, lb.labeller) for lb in labels) == [
        ("shoe-1590", "Footwear", True, "ana"),
        ("tee-1163", "Clothing > Men's Clothing", True, "ana"),
        ("tee-1163", "Clothing > Men's Clothing > Sweatshirts", False, "ana"),
        ("watch-7", "Watches", True, "ana"),
        ("watch-7", "Watches > Wrist Watches", True, "ana"),
    ]
    # each label carries the p its request was drawn with (priority / 10 in _request): the 1/p weight
    assert {lb.product_id: lb.p for lb in labels} == {"shoe-1590": 0.09, "watch-7": 0.08, "tee-1163": 0.07}
    assert {lb.model_version for lb in labels} == {"rules-demo"}
    # benchmarks/results/labelling_page.png: PRODCAT_WRITE_SCREENSHOTS=benchmarks/results
    keep_screenshot(png, "labelling_page.png", tmp_path)


# --- access ------------------------------------------------------------------------------------

@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "labelling.example.com"])
def test_non_loopback_bind_without_token_is_refused(host):
    with pytest.raises(ConfigError, match="not a loopback address.*--token"):
        check_bind(host, None)
    with pytest.raises(ConfigError, match="--token"):
        labelling_app(Settings(), TAXONOMY, token=None, host=host)
    with pytest.raises(ConfigError, match="--token"):  # the command refuses before reaching any service
        label_ui(host=host, port=8089, labeller_token=None, taxonomy=None)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "[::1]", "localhost", "127.0.0.2"])
def test_loopback_bind_needs_no_token(host):
    check_bind(host, None)


def test_the_command_refuses_a_network_bind_without_a_token():
    env = {k: v for k, v in os.environ.items() if k != "PRODCAT_LABELLING_TOKEN"}
    proc = subprocess.run([sys.executable, "-m", "prodcat", "label-ui", "--host", "0.0.0.0"], capture_output=True,
                          text=True, env=env, timeout=120, cwd=ROOT)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode != 0 and len(lines) == 1, proc.stderr
    assert "not a loopback address" in lines[0] and "--token" in lines[0] and "PRODCAT_LABELLING_TOKEN" in lines[0]


def test_loopback_tool_refuses_other_hosts_and_origins():
    # nothing listens on port 1: the tool starts, its Kafka clients just cannot connect
    app = labelling_app(Settings(kafka_brokers="127.0.0.1:1"), TAXONOMY, token=None, host="127.0.0.1")

    async def scenario() -> None:
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            own = f"http://127.0.0.1:{client.port}"
            page = await client.get("/")  # normal use on this machine: no token needed
            assert page.status == 200 and '<script src="/static/labelling.js">' in await page.text()
            assert (await client.get("/stats")).status == 200
            assert (await client.post("/labeller", json={"name": "ana"}, headers={"Origin": own})).status == 200
            # a web site that rebinds its own name to 127.0.0.1 reaches the port, but not the tool
            for path in ("/", "/stats", "/next", "/static/labelling.js"):
                resp = await client.get(path, headers={"Host": "evil.example"})
                assert resp.status == 403, path
                assert "expected a Host header" in (await resp.json())["error"]
            # and another origin cannot make a labeller's browser post labels
            for path in ("/labeller", "/labels", "/skip"):
                resp = await client.post(path, json={"name": "mallory"}, headers={"Origin": "http://evil.example"})
                assert resp.status == 403, path
                assert "Origin" in (await resp.json())["error"]
            assert (await (await client.get("/stats")).json())["published"] == {}

    asyncio.run(scenario())


def test_requests_without_the_token_get_401():
    token = "s3cret-labelling-token"
    # nothing listens on port 1: the tool starts, its Kafka clients just cannot connect
    app = labelling_app(Settings(kafka_brokers="127.0.0.1:1"), TAXONOMY, token=token, host="0.0.0.0")

    async def scenario() -> None:
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            for method, path in [("GET", "/"), ("GET", "/stats"), ("GET", "/next"), ("GET", "/categories"),
                                 ("GET", "/images/x"), ("POST", "/labels"), ("POST", "/labeller")]:
                resp = await client.request(method, path, json={})
                assert resp.status == 401, (method, path)
                assert "token" in (await resp.json())["error"]
            assert (await client.get("/?token=wrong", allow_redirects=False)).status == 401
            assert (await client.get("/stats", headers={"Authorization": "Bearer nope"})).status == 401
            assert (await client.get("/stats", headers={"Authorization": f"Bearer {token}"})).status == 200
            assert (await client.get("/stats", headers={"X-Prodcat-Token": token})).status == 200

            resp = await client.get(f"/?token={token}", allow_redirects=False)  # once: a cookie, a clean URL
            assert resp.status == 302 and resp.headers["Location"] == "/"
            assert "HttpOnly" in resp.headers["Set-Cookie"] and "SameSite=Strict" in resp.headers["Set-Cookie"]
            page = await client.get("/")
            assert page.status == 200 and "script-src 'self'" in page.headers["Content-Security-Policy"]
            assert (await client.get("/static/labelling.js")).status == 200  # the cookie covers the assets
            # a labeller name is needed for labels, and is kept in a cookie
            assert (await client.post("/labels", json={"product_id": "p", "decisions": []})).status == 400
            assert (await client.post("/labeller", json={"name": "a|b"})).status == 400
            assert (await client.post("/labeller", json={"name": "José Ng"})).status == 200
            resp = await client.post("/labels", json={"product_id": "p", "decisions": [{"category": "nope",
                                                                                         "positive": True}]})
            assert resp.status == 400 and "unknown category" in (await resp.json())["error"]
            assert (await client.get("/next")).status == 200

    asyncio.run(scenario())


def test_queue_orders_by_priority_leases_and_commits_only_labelled():
    queue = RequestQueue(max_size=10)
    for offset, (pid, priority) in enumerate([("a", 0.6), ("b", 0.9), ("c", 0.7)]):
        queue.add({"id": pid, "priority": priority}, "t", 0, offset)
    assert queue.take("ana")["id"] == "b"
    assert queue.take("ana")["id"] == "b"  # her lease, until she decides
    assert queue.take("bo")["id"] == "c"  # not the product ana holds
    queue.skip("b", "ana")
    assert queue.take("ana")["id"] == "a"
    assert queue.commit_offsets() == {("t", 0): 0}
    queue.done("a")
    assert queue.commit_offsets() == {("t", 0): 1}  # b (offset 1) is still waiting for someone
    queue.done("b")
    queue.done("c")
    assert queue.commit_offsets() == {("t", 0): 3} and len(queue) == 0 and queue.labelled == 3
    assert not queue.add({"id": "a", "priority": 1.0}, "t", 0, 3)  # labelled in this session: not again
    assert queue.commit_offsets() == {("t", 0): 4}
