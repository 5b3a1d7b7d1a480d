"""The similar-products web app: a JSON endpoint, product images, and a page to judge results.

``similarity_app(...)`` builds an aiohttp application:

- ``GET /similar/{id}?k=100&everywhere=0``: neighbours (rank, id, score, level1, level2, title)
- ``GET /products?q=``: up to 20 products whose id or title contains ``q``
- ``GET /products/{id}``: one product, with its level-1/2 category from the index
- ``GET /random``: a random product that has an image vector
- ``GET /images/{id}``: the product's image (local files under ``image_root`` only; remote
  ones through the SSRF-safe fetcher, re-encoded; never a redirect)
- ``GET /judge``: the judging page (no external resources: works offline)
- ``GET /judgements?query_id=&judge=`` / ``POST /judgements``: a query's marks / one new mark
- ``GET /judgements/summary?k=``: precision@k per level-2 category
"""

from __future__ import annotations

import io
import json
import logging
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

from aiohttp import web
from PIL import Image

from embedder.fetch import ImageFetcher
from embedder.index import MAX_K, ImageIndex
from embedder.judgements import JudgementStore
from prodcat.catalogue import true_category_path
from prodcat.errors import InvalidRecord, NotFound, ProdcatError
from prodcat.record import ProductRecord, parse_record
from prodcat.web import blocking, json_error, json_object, page

__all__ = ["ProductLookup", "product_table", "similarity_app"]

log = logging.getLogger(__name__)

Product = Mapping[str, Any]
ProductLookup = Mapping[str, Product] | Callable[[str], Product | None]
MAX_RESULTS = 20
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp"})
REMOTE_IMAGE_MAX_SIDE = 512
CACHE_IMAGES = "public, max-age=3600"


def product_table(records: Iterable[ProductRecord | Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """id -> {id, title, image_url, category} for the app's lookup; unparseable records are skipped."""
    table: dict[str, dict[str, Any]] = {}
    for raw in records:
        try:
            record = raw if isinstance(raw, ProductRecord) else parse_record(raw)
        except InvalidRecord:
            continue
        table[record.id] = {"id": record.id, "title": record.title or "", "image_url": record.image_url,
                            "category": " > ".join(true_category_path(record))}
    return table


class _Products:
    """Lookup by id, and (for a mapping) substring search and random picks."""

    def __init__(self, products: ProductLookup) -> None:
        self._mapping = products if isinstance(products, Mapping) else None
        self._lookup = products.get if isinstance(products, Mapping) else products
        self._ids = list(products) if isinstance(products, Mapping) else []

    def get(self, product_id: str) -> Product | None:
        return self._lookup(product_id)

    def search(self, query: str, limit: int) -> list[Product]:
        exact = self.get(query)
        found = [exact] if exact is not None else []
        if self._mapping is None:
            return found
        needle = query.casefold()
        for product_id, product in self._mapping.items():
            if len(found) >= limit:
                break
            if product_id != query and (needle in product_id.casefold()
                                        or needle in str(product.get("title") or "").casefold()):
                found.append(product)
        return found

    def sample(self, n: int) -> list[str]:
        return random.sample(self._ids, min(n, len(self._ids)))


_INDEX: web.AppKey[ImageIndex] = web.AppKey("index", ImageIndex)
_STORE: web.AppKey[JudgementStore] = web.AppKey("judgements", JudgementStore)
_PRODUCTS: web.AppKey[_Products] = web.AppKey("products", _Products)
_FETCHER: web.AppKey[ImageFetcher] = web.AppKey("fetcher", ImageFetcher)
_ROOT: web.AppKey[Path | None] = web.AppKey("image_root")


def _brief(product_id: str, product: Product | None) -> dict[str, Any]:
    product = product or {}
    return {"id": product_id, "title": product.get("title") or "", "category": product.get("category") or ""}


def _bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": message}), content_type="application/json")


def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name, str(default))
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise _bad_request(f"expected {low} <= {name} <= {high}, received {raw[:20]!r}")
    return value


def _bool_param(request: web.Request, name: str) -> bool:
    raw = request.query.get(name, "0").strip().lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off", ""):
        return False
    raise _bad_request(f"expected {name}=0 or 1, received {raw[:20]!r}")


@web.middleware
async def _json_errors(request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except NotFound as exc:
        return json_error(404, str(exc))
    except InvalidRecord as exc:
        return json_error(400, str(exc))
    except ProdcatError as exc:
        return json_error(500, str(exc))
    except Exception as exc:  # noqa: BLE001 - e.g. Milvus unreachable: answer, log, keep serving
        log.exception("similarity app: %s %s failed", request.method, request.path)
        return json_error(503, f"backend error: {type(exc).__name__}: {exc}"[:300])


# --- handlers --------------------------------------------------------------------------------

async def _similar(request: web.Request) -> web.Response:
    product_id = request.match_info["product_id"]
    k = _int_param(request, "k", 100, 1, MAX_K)
    everywhere = _bool_param(request, "everywhere")
    hits = await blocking(request.app[_INDEX].similar, product_id, k=k, within_level2=not everywhere)
    products = request.app[_PRODUCTS]
    return web.json_response([
        {"rank": rank, "id": h.id, "score": round(h.score, 6), "level1": h.level1, "level2": h.level2,
         "title": (products.get(h.id) or {}).get("title") or ""}
        for rank, h in enumerate(hits, start=1)
    ])


async def _search_products(request: web.Request) -> web.Response:
    query = request.query.get("q", "").strip()
    if not query:
        return web.json_response([])
    found = request.app[_PRODUCTS].search(query, MAX_RESULTS)
    return web.json_response([_brief(str(p.get("id")), p) for p in found])


async def _product(request: web.Request) -> web.Response:
    product_id = request.match_info["product_id"]
    product = request.app[_PRODUCTS].get(product_id)
    stored = await blocking(request.app[_INDEX].get, [product_id])
    if product is None and not stored:
        return json_error(404, f"unknown product {product_id!r}")
    body = {**_brief(product_id, product), "indexed": bool(stored), "level1": None, "level2": None}
    if stored:
        body.update(level1=stored[0].level1, level2=stored[0].level2, model_version=stored[0].model_version)
    return web.json_response(body)


async def _random(request: web.Request) -> web.Response:
    candidates = request.app[_PRODUCTS].sample(50)
    stored = await blocking(request.app[_INDEX].get, candidates) if candidates else []
    if not stored:
        return json_error(404, "no product with an image vector found; embed the catalogue first (prodcat embed)")
    return web.json_response({"id": random.choice(stored).id})


def _is_local(url: str) -> bool:
    """A file:// URL or a bare path (the same rule as ``ImageFetcher``)."""
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        return False
    return not url.startswith("//") and (scheme in ("file", "") or len(scheme) == 1)


def _local_image(url: str, root: Path | None) -> Path | None:
    """The file behind a local image URL if it is an image file inside ``root``, else None."""
    if root is None:
        return None
    parts = urlsplit(url)
    if parts.scheme.lower() == "file":
        if parts.netloc not in ("", "localhost"):
            return None
        path = Path(url2pathname(parts.path))
    else:
        path = Path(url)
    try:
        path = path.resolve()  # symlinks too: a link inside root to a file outside is refused
    except OSError:
        return None
    if not path.is_relative_to(root) or path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
        return None
    return path


def _jpeg(image: Image.Image) -> bytes:
    image = image.copy()
    image.thumbnail((REMOTE_IMAGE_MAX_SIDE, REMOTE_IMAGE_MAX_SIDE))
    out = io.BytesIO()
    image.convert("RGB").save(out, format="JPEG", quality=85)
    return out.getvalue()


async def _image(request: web.Request) -> web.StreamResponse:
    product_id = request.match_info["product_id"]
    product = request.app[_PRODUCTS].get(product_id)
    url = (product or {}).get("image_url")
    if not url:
        return json_error(404, f"no image for product {product_id!r}")
    headers = {"Cache-Control": CACHE_IMAGES, "X-Content-Type-Options": "nosniff"}
    if _is_local(url):
        path = _local_image(url, request.app[_ROOT])
        if path is None:
            return json_error(404, f"image of product {product_id!r} is not a file under the image root")
        return web.FileResponse(path, headers=headers)
    # Never redirect the browser to a feed URL (it would leak the judge's address to any host
    # and let a feed point at internal ones): fetch it here, checked, and send fresh JPEG bytes.
    result = await blocking(request.app[_FETCHER].fetch, url)
    if not result.ok:
        return json_error(404, f"image of product {product_id!r} unavailable: {result.reason}")
    return web.Response(body=await blocking(_jpeg, result.image), content_type="image/jpeg", headers=headers)


async def _judgements(request: web.Request) -> web.Response:
    query_id = request.query.get("query_id", "")
    if not query_id:
        return json_error(400, "expected ?query_id=<product id>")
    marks = request.app[_STORE].for_query(query_id, request.query.get("judge") or None)
    return web.json_response([asdict(m) for m in marks])


async def _add_judgement(request: web.Request) -> web.Response:
    body = await json_object(request)
    if isinstance(body, web.Response):
        return body
    problems = [name for name, kind in (("query_id", str), ("neighbour_id", str), ("judge", str), ("rank", int),
                                        ("good", bool))
                if not isinstance(body.get(name), kind) or (kind is int and isinstance(body.get(name), bool))]
    if problems or not 1 <= body["rank"] <= MAX_K or not 0 < len(body["judge"].strip()) <= 100:
        return json_error(400, "expected {query_id: str, neighbour_id: str, rank: 1..16384, good: bool, "
                           f"judge: 1-100 chars}}; invalid: {', '.join(problems) or 'rank or judge'}")
    stored = await blocking(request.app[_INDEX].get, [body["query_id"]])
    if not stored:
        return json_error(404, f"product {body['query_id']!r} has no image vector")
    mark = request.app[_STORE].record(body["query_id"], body["neighbour_id"], judge=body["judge"].strip(),
                                      level2=stored[0].level2, rank=body["rank"], good=body["good"])
    return web.json_response(asdict(mark), status=201)


async def _summary(request: web.Request) -> web.Response:
    k = _int_param(request, "k", MAX_K, 1, MAX_K) if "k" in request.query else None
    return web.json_response(request.app[_STORE].summary(k))


async def _page(request: web.Request) -> web.Response:
    return web.Response(text=JUDGE_PAGE, content_type="text/html", headers={
        "Content-Security-Policy": "default-src 'self'; img-src 'self'; style-src 'unsafe-inline'; "
                                   "script-src 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'",
        "Cache-Control": "no-store",
    })


async def _home(request: web.Request) -> web.Response:
    raise web.HTTPFound("/judge")  # our own page; never a redirect to a product URL


def similarity_app(index: ImageIndex, judgements: JudgementStore, image_root: Path | None,
                   products: ProductLookup, *, fetcher: ImageFetcher | None = None) -> web.Application:
    """The app over an open index and judgement store.

    ``products`` maps id -> {title, image_url, category} (see ``product_table``), or is a
    callable id -> product; a callable gives no substring search (exact id only) and no random
    pick. ``image_root``: the folder local image files may be served from (None: none are).
    ``fetcher`` fetches remote images; the default refuses private addresses and local files.
    """
    app = web.Application(middlewares=[_json_errors])
    app[_INDEX] = index
    app[_STORE] = judgements
    app[_PRODUCTS] = _Products(products)
    app[_FETCHER] = fetcher or ImageFetcher()
    app[_ROOT] = Path(image_root).resolve() if image_root is not None else None
    app.router.add_get("/", _home)
    app.router.add_get("/judge", _page)
    app.router.add_get("/similar/{product_id}", _similar)
    app.router.add_get("/products", _search_products)
    app.router.add_get("/products/{product_id}", _product)
    app.router.add_get("/random", _random)
    app.router.add_get("/images/{product_id}", _image)
    app.router.add_get("/judgements", _judgements)
    app.router.add_post("/judgements", _add_judgement)
    app.router.add_get("/judgements/summary", _summary)
    return app


JUDGE_PAGE = page(r"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>prodcat · similar products</title>
<style>
/* prodcat:theme */
header { display: flex; align-items: center; gap: 18px; padding: 10px 24px; background: #1c2230; color: #fff; }
header h1 { margin: 0; font-size: 16px; font-weight: 600; letter-spacing: .2px; }
header h1 span { color: #8fb0ff; font-weight: 500; }
header .spacer { flex: 1; }
header label { font-size: 13px; color: #c8cfdb; display: flex; align-items: center; gap: 6px; }
header input[type=text], header select { background: #2b3344; color: #fff; border: 1px solid #3d475b;
       border-radius: 6px; padding: 5px 8px; font: inherit; }
header input[type=text] { width: 130px; }
.layout { display: grid; grid-template-columns: 310px 1fr; gap: 18px; padding: 18px 24px; align-items: start; }
.panel { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 14px; margin-bottom: 18px; }
.panel h2 { margin: 0 0 10px; font-size: 13px; text-transform: uppercase; letter-spacing: .6px; color: var(--muted); }
.searchrow { display: flex; gap: 8px; }
.searchrow input { flex: 1; min-width: 0; padding: 7px 10px; border: 1px solid var(--line); border-radius: 6px; font: inherit; }
button { font: inherit; cursor: pointer; border-radius: 6px; border: 1px solid var(--line); background: #fff; padding: 6px 10px; }
button:hover { border-color: #b9c0cc; }
button.primary { background: var(--accent); border-color: var(--accent); color: #fff; }
#results { list-style: none; margin: 10px 0 0; padding: 0; max-height: 300px; overflow-y: auto; }
#results li button { display: block; width: 100%; text-align: left; border: 0; border-radius: 6px; padding: 6px 8px; background: none; }
#results li button:hover { background: #eef2fb; }
#results .rid { font-weight: 600; margin-right: 6px; }
#results .rtitle { color: var(--muted); }
table { width: 100%; border-collapse: collapse; font-size: 13px; }
th, td { text-align: left; padding: 5px 4px; border-bottom: 1px solid var(--line); }
th { color: var(--muted); font-weight: 500; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.current td { background: #eef2fb; font-weight: 600; }
tr.total td { border-bottom: 0; font-weight: 600; }
.empty { color: var(--muted); padding: 30px 10px; text-align: center; }
#query { display: flex; gap: 20px; align-items: center; }
#query .thumb { width: 165px; height: 220px; flex: none; }
#query h2 { font-size: 20px; margin: 0 0 4px; text-transform: none; letter-spacing: 0; color: var(--ink); }
#query .cat { color: var(--muted); }
.pill { display: inline-block; background: #eef2fb; color: #2a4da8; border-radius: 999px; padding: 2px 10px; font-size: 12px; margin-top: 8px; }
.progress { margin-top: 12px; height: 6px; width: 260px; background: var(--line); border-radius: 3px; overflow: hidden; }
.progress div { height: 100%; background: var(--good); width: 0; transition: width .2s; }
.thumb { background: #fff; border-radius: 8px; display: flex; align-items: center; justify-content: center; overflow: hidden; }
/* catalogue photos can be tiny (Myntra's are 60x80): scale them up to the box, keep the aspect */
.thumb img { width: 100%; height: 100%; object-fit: contain; }
.thumb .noimg { color: var(--muted); font-size: 12px; }
.gridhead { display: flex; align-items: baseline; justify-content: space-between; margin: 0 2px 10px; }
.gridhead h3 { margin: 0; font-size: 15px; }
.keys { color: var(--muted); font-size: 12px; }
kbd { font: 11px ui-monospace, monospace; background: #f1f3f6; border: 1px solid #d5d9e0; border-bottom-width: 2px;
      border-radius: 4px; padding: 0 4px; color: var(--ink); }
#grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(155px, 1fr)); gap: 14px; }
.card { background: var(--card); border: 2px solid var(--line); border-radius: 10px; padding: 10px; position: relative; }
.card .thumb { height: 170px; margin-bottom: 8px; background: #fafbfc; }
.card .rank { position: absolute; top: 8px; left: 8px; background: rgba(28,34,48,.82); color: #fff; font-size: 12px;
              border-radius: 6px; padding: 1px 7px; }
.card .score { float: right; font-variant-numeric: tabular-nums; color: var(--muted); font-size: 12px; }
.card .id { font-weight: 600; font-size: 13px; }
.card .title { font-size: 12px; color: var(--ink); height: 34px; overflow: hidden; margin: 2px 0; }
.card .l2 { font-size: 12px; color: var(--muted); }
.card .l2.other { color: #b25e00; }
.card .actions { display: flex; gap: 6px; margin-top: 8px; }
.card .actions button { flex: 1; padding: 4px 0; font-size: 12px; white-space: nowrap; }
.card.selected { border-color: var(--accent); box-shadow: 0 0 0 3px rgba(47,111,237,.18); }
.card.good { background: var(--good-bg); border-color: var(--good); }
.card.bad { background: var(--bad-bg); border-color: var(--bad); }
.card.good.selected, .card.bad.selected { box-shadow: 0 0 0 3px rgba(47,111,237,.35); }
.card.good .actions .g { background: var(--good); border-color: var(--good); color: #fff; }
.card.bad .actions .b { background: var(--bad); border-color: var(--bad); color: #fff; }
#status { min-height: 18px; color: var(--bad); font-size: 13px; margin-top: 8px; }
</style>
</head>
<body>
<header>
  <h1>prodcat <span>· visual similarity</span></h1>
  <div class="spacer"></div>
  <label>judge <input id="judge" type="text" autocomplete="off"></label>
  <label>top <select id="k"><option>8</option><option selected>12</option><option>24</option><option>48</option><option>100</option></select></label>
  <label><input id="everywhere" type="checkbox"> all categories</label>
</header>
<div class="layout">
  <aside>
    <div class="panel">
      <h2>Product</h2>
      <div class="searchrow">
        <input id="search" type="search" placeholder="id or title…" autocomplete="off">
        <button id="random" class="primary" title="random product (r)">Random</button>
      </div>
      <ul id="results"></ul>
      <div id="status" role="status"></div>
    </div>
    <div class="panel">
      <h2>Precision@<span id="sumk">12</span> by category</h2>
      <table id="summary"><thead><tr><th>level 2</th><th class="num">queries</th><th class="num">good</th><th class="num">P@k</th></tr></thead>
      <tbody></tbody></table>
    </div>
  </aside>
  <main>
    <div class="panel" id="querypanel"><div class="empty">Pick a product on the left, or press <kbd>r</kbd> for a random one.</div></div>
    <div class="gridhead"><h3 id="gridtitle"></h3>
      <span class="keys"><kbd>j</kbd>/<kbd>k</kbd> move · <kbd>g</kbd> good · <kbd>b</kbd> bad · <kbd>r</kbd> random · <kbd>/</kbd> search</span></div>
    <div id="grid"></div>
  </main>
</div>
<script>
// prodcat:dom
const state = { query: null, neighbours: [], marks: {}, cursor: 0 };
function thumb(id, cls) {
  const box = el("div", { class: "thumb " + (cls || "") });
  const img = el("img", { src: "/images/" + encodeURIComponent(id), alt: "", loading: "lazy" });
  img.addEventListener("error", () => box.replaceChildren(el("span", { class: "noimg", text: "no image" })));
  box.append(img);
  return box;
}
async function api(path, options) {
  const response = await fetch(path, options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}
function say(message) { $("#status").textContent = message || ""; }
const judge = () => $("#judge").value.trim() || "anonymous";
const k = () => Number($("#k").value);

async function search(text) {
  const list = $("#results");
  if (!text.trim()) { list.replaceChildren(); return; }
  try {
    const found = await api("/products?q=" + encodeURIComponent(text.trim()));
    list.replaceChildren(...found.map((p) => el("li", {}, el("button", { onclick: () => pick(p.id) },
      el("span", { class: "rid", text: p.id }), el("span", { class: "rtitle", text: p.title })))));
    if (!found.length) list.replaceChildren(el("li", { class: "empty", text: "no match" }));
  } catch (e) { say(e.message); }
}

async function pick(id) {
  say("");
  if (document.activeElement) document.activeElement.blur();
  document.body.dataset.state = "loading";
  try {
    const everywhere = $("#everywhere").checked ? 1 : 0;
    const [query, neighbours, marks] = await Promise.all([
      api("/products/" + encodeURIComponent(id)),
      api(`/similar/${encodeURIComponent(id)}?k=${k()}&everywhere=${everywhere}`),
      api(`/judgements?query_id=${encodeURIComponent(id)}&judge=${encodeURIComponent(judge())}`),
    ]);
    state.query = query; state.neighbours = neighbours; state.cursor = 0;
    state.marks = Object.fromEntries(marks.map((m) => [m.neighbour_id, m.good]));
    render();
    document.body.dataset.state = "ready";
  } catch (e) { say(e.message); document.body.dataset.state = "error"; }
}

function render() {
  const q = state.query;
  $("#querypanel").replaceChildren(el("div", { id: "query" }, thumb(q.id),
    el("div", {}, el("h2", { text: q.title || q.id }),
      el("div", { class: "cat", text: (q.category || q.level2 || "") + "  ·  id " + q.id }),
      el("span", { class: "pill", text: q.level2 || "not indexed" }),
      el("div", { class: "progress" }, el("div", { id: "progressbar" })),
      el("div", { class: "keys", id: "progresstext" }))));
  const where = $("#everywhere").checked ? "in all categories" : "in " + (q.level2 || "?");
  $("#gridtitle").textContent = `${state.neighbours.length} most similar ${where}`;
  $("#grid").replaceChildren(...state.neighbours.map((n, i) => card(n, i)));
  update();
}

function card(n, i) {
  return el("div", { class: "card", "data-rank": n.rank, "data-id": n.id, onclick: () => select(i) },
    thumb(n.id), el("span", { class: "rank", text: "#" + n.rank }),
    el("span", { class: "score", text: n.score.toFixed(3) }),
    el("div", { class: "id", text: n.id }), el("div", { class: "title", text: n.title, title: n.title }),
    el("div", { class: "l2" + (n.level2 === state.query.level2 ? "" : " other"), text: n.level2 }),
    el("div", { class: "actions" },
      el("button", { class: "g", title: "good (g)", onclick: (e) => { e.stopPropagation(); mark(i, true); } }, "✓ good"),
      el("button", { class: "b", title: "bad (b)", onclick: (e) => { e.stopPropagation(); mark(i, false); } }, "✗ bad")));
}

function update() {
  const cards = document.querySelectorAll("#grid .card");
  cards.forEach((c, i) => {
    const m = state.marks[state.neighbours[i].id];
    c.classList.toggle("selected", i === state.cursor);
    c.classList.toggle("good", m === true);
    c.classList.toggle("bad", m === false);
  });
  const judged = state.neighbours.filter((n) => n.id in state.marks).length;
  const bar = $("#progressbar");
  if (bar) bar.style.width = (state.neighbours.length ? 100 * judged / state.neighbours.length : 0) + "%";
  const text = $("#progresstext");
  if (text) text.textContent = `${judged} of ${state.neighbours.length} judged by ${judge()}`;
}

function select(i) {
  if (!state.neighbours.length) return;
  state.cursor = Math.max(0, Math.min(state.neighbours.length - 1, i));
  update();
  const c = document.querySelectorAll("#grid .card")[state.cursor];
  if (c) c.scrollIntoView({ block: "nearest" });
}

async function mark(i, good) {
  const n = state.neighbours[i];
  if (!n) return;
  state.marks[n.id] = good;
  select(i + 1);
  try {
    await api("/judgements", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ query_id: state.query.id, neighbour_id: n.id, rank: n.rank, good, judge: judge() }) });
    await summary();
  } catch (e) { delete state.marks[n.id]; update(); say("not saved: " + e.message); }
}

async function summary() {
  $("#sumk").textContent = k();
  try {
    const rows = await api("/judgements/summary?k=" + k());
    const body = $("#summary tbody");
    const entries = Object.entries(rows);
    let judged = 0, good = 0, queries = 0;
    body.replaceChildren(...entries.map(([level2, s]) => {
      judged += s.judged; good += s.good; queries += s.queries;
      const current = state.query && state.query.level2 === level2;
      return el("tr", { class: current ? "current" : "", "data-level2": level2 },
        el("td", { text: level2 }), el("td", { class: "num", text: s.queries }),
        el("td", { class: "num", text: `${s.good}/${s.judged}` }),
        el("td", { class: "num p", text: s.precision_at_k.toFixed(2) }));
    }));
    if (entries.length > 1) body.append(el("tr", { class: "total" }, el("td", { text: "all" }),
      el("td", { class: "num", text: queries }), el("td", { class: "num", text: `${good}/${judged}` }),
      el("td", { class: "num", text: (good / judged).toFixed(2) })));
    if (!entries.length) body.append(el("tr", {}, el("td", { colspan: 4, class: "empty", text: "no judgements yet" })));
  } catch (e) { say(e.message); }
}

async function randomProduct() {
  try { const r = await api("/random"); await pick(r.id); } catch (e) { say(e.message); }
}

let timer = null;
$("#search").addEventListener("input", (e) => { clearTimeout(timer); timer = setTimeout(() => search(e.target.value), 150); });
$("#search").addEventListener("keydown", async (e) => {
  if (e.key !== "Enter") return;
  const first = $("#results li button");
  if (first) first.click();
});
$("#random").addEventListener("click", randomProduct);
$("#judge").value = localStorage.getItem("prodcat.judge") || "anonymous";
$("#judge").addEventListener("change", () => { localStorage.setItem("prodcat.judge", judge()); if (state.query) pick(state.query.id); });
$("#k").addEventListener("change", () => { summary(); if (state.query) pick(state.query.id); });
$("#everywhere").addEventListener("change", () => { if (state.query) pick(state.query.id); });
document.addEventListener("keydown", (e) => {
  const typing = ["INPUT", "SELECT", "TEXTAREA"].includes(e.target.tagName);
  if (typing) { if (e.key === "Escape") e.target.blur(); return; }
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const actions = { j: () => select(state.cursor + 1), k: () => select(state.cursor - 1),
                    g: () => mark(state.cursor, true), b: () => mark(state.cursor, false),
                    r: randomProduct, "/": () => $("#search").focus() };
  if (actions[e.key]) { e.preventDefault(); actions[e.key](); }
});
summary();
document.body.dataset.state = "idle";
</script>
</body>
</html>
""")
