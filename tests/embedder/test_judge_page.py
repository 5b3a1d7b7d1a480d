"""End to end in headless Chromium: real Myntra photos embedded by the real model into Milvus
Lite, the similarity app served, the judging page driven by keyboard over DevTools.

The screenshot goes to the tmp folder; ``PRODCAT_WRITE_SCREENSHOTS=benchmarks/results`` also
writes it there (the README's screenshot).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from embedder import EfficientNetLite0Embedder, ImageIndex
from embedder.bulk import embed_catalogue
from embedder.judgements import JudgementStore
from embedder.similarity_app import product_table, similarity_app
from prodcat.catalogue import read_catalogue
from prodcat.taxonomy import path_id
from tests.embedder.cdp import Browser, chromium_path, keep_screenshot

PER_LEVEL2 = {"Shoes": 14, "Topwear": 8, "Bags": 8}  # 30 photos; a shoe has 13 neighbours to judge

pytestmark = pytest.mark.skipif(chromium_path() is None,
                                reason="chromium is not on PATH; install it with `apt-get install -y chromium`")


def _sample(datasets: Path) -> list[dict]:
    taken: Counter[str] = Counter()
    sample = []
    for raw in read_catalogue(datasets / "myntra" / "images.csv", preset="myntra-images"):
        level2 = raw["category"].split(" > ")[1]
        if taken[level2] < PER_LEVEL2.get(level2, 0):
            taken[level2] += 1
            sample.append(raw)
            if len(sample) == sum(PER_LEVEL2.values()):
                return sample
    return sample


def test_judge_similar_products_by_keyboard(datasets, tmp_path):
    sample = _sample(datasets)
    index = ImageIndex(str(tmp_path / "images.db"))
    report = embed_catalogue(sample, embedder=EfficientNetLite0Embedder(), index=index)
    assert report.indexed == 30
    store = JudgementStore(tmp_path / "judgements.sqlite")
    bag = next(r["id"] for r in sample if " > Bags > " in r["category"])
    store.record(bag, "someone-else", judge="earlier", level2="Bags", rank=1, good=True)  # a second summary row
    query = next(r for r in sample if " > Shoes > " in r["category"])
    shoes = index.get([query["id"]])[0].level2  # the index holds category ids; the page shows names
    assert shoes == path_id(query["category"].split(" > ")[:2])
    app = similarity_app(index, store, image_root=datasets / "myntra", products=product_table(sample))

    async def scenario() -> bytes:
        async with TestServer(app, host="127.0.0.1") as server:
            browser = await Browser.launch(tmp_path / "chromium")
            try:
                await browser.navigate(str(server.make_url("/judge")))
                await browser.wait_for("document.body.dataset.state === 'idle'")
                await browser.evaluate("""(() => { const j = document.querySelector('#judge');
                    j.value = 'cdp-test'; j.dispatchEvent(new Event('change')); })()""")

                # pick the product: "/" focuses the search box, type its id, choose the first match
                await browser.press("/")
                assert await browser.evaluate("document.activeElement.id") == "search"
                await browser.type_text(query["id"])
                await browser.wait_for("document.querySelector('#results li button .rid')?.textContent === "
                                       f"{query['id']!r}")
                await browser.evaluate("document.querySelector('#results li button').click()")
                cards = await browser.wait_for("document.body.dataset.state === 'ready' && "
                                               "document.querySelectorAll('#grid .card').length")
                assert cards == 12  # the page's default top-k; all neighbours are shoes
                assert await browser.evaluate(
                    "[...document.querySelectorAll('#grid .l2')].every(e => e.textContent === 'Shoes')")

                # g, g, b: ranks 1 and 2 good, 3 bad; the cursor moves on after each mark
                for key in "ggb":
                    await browser.press(key)
                await browser.wait_for(f"document.querySelector('#summary tr[data-level2=\"{shoes}\"] td:nth-child(3)')"
                                       "?.textContent === '2/3'")
                shoes_row = await browser.evaluate(
                    f"[...document.querySelectorAll('#summary tr[data-level2=\"{shoes}\"] td')].map(td => td.textContent)")
                assert shoes_row == ["Shoes", "1", "2/3", "0.67"]
                marks = await browser.evaluate(
                    "[...document.querySelectorAll('#grid .card')].slice(0, 4).map(c => c.classList.contains('good') ? 'g'"
                    " : c.classList.contains('bad') ? 'b' : '-')")
                assert marks == ["g", "g", "b", "-"]
                selected = "document.querySelector('#grid .card.selected').dataset.rank"
                assert await browser.evaluate(selected) == "4"
                await browser.press("k")
                assert await browser.evaluate(selected) == "3"
                await browser.press("j")
                await browser.press("j")
                assert await browser.evaluate(selected) == "5"

                await browser.wait_for("[...document.images].length === 13 && "
                                       "[...document.images].every(i => i.complete && i.naturalWidth > 0)")
                return await browser.screenshot()
            finally:
                await browser.close()

    try:
        png = asyncio.run(scenario())
        marks = store.for_query(query["id"], judge="cdp-test")
        assert [(m.rank, m.good, m.level2) for m in marks] == [(1, True, shoes), (2, True, shoes), (3, False, shoes)]
        assert store.summary(k=12)[shoes] == {"queries": 1, "judged": 3, "good": 2, "precision_at_k": 2 / 3}
    finally:
        store.close()
        index.close()
    # benchmarks/results/similarity_page.png: PRODCAT_WRITE_SCREENSHOTS=benchmarks/results
    keep_screenshot(png, "similarity_page.png", tmp_path)
