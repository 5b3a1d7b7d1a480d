"""The similar-products web app: a JSON endpoint, product images, and a page to judge results.

``similarity_app(...)`` builds an aiohttp application:

- ``GET /similar/{id}?k=100&everywhere=0``: neighbours (rank, id, score, level1, level2, level2_name, title)
- ``GET /products?q=``: up to 20 products whose id or title contains ``q``
- ``GET /products/{id}``: one product, with its level-1/2 category from the index
- ``GET /random``: a random product that has an image vector
- ``GET /images/{id}``: the product's image (local files under ``image_root`` only; remote
  ones through the SSRF-safe fetcher, re-encoded; never a redirect)
- ``GET /judge``: the judging page (``embedder/pages/judge.*``, no external resources: works
  offline), its CSS/JS and the shared ones under ``GET /static/{name}``
- ``GET /judgements?query_id=&judge=`` / ``POST /judgements``: a query's marks / one new mark
- ``GET /judgements/summary?k=``: precision@k per level-2 category (with its name)

``level1``/``level2`` are the index's category ids (the stream and ``prodcat embed`` write the
same ones); ``level2_name`` is the name the page shows, from the products' own category paths.

Access (:func:`prodcat.web.access_middleware`): a non-loopback bind needs a token, which every
request must then present; on loopback the Host and Origin headers must be this server's.
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

from embedder.bulk import level_ids
from embedder.fetch import ImageFetcher
from embedder.index import MAX_K, ImageIndex
from embedder.judgements import JudgementStore
from prodcat.catalogue import true_category_path
from prodcat.errors import InvalidRecord, NotFound, ProdcatError
from prodcat.record import ProductRecord, parse_record
from prodcat.taxonomy import Taxonomy
from prodcat.web import access_middleware, blocking, check_bind, json_error, json_object, serve_page

__all__ = ["ProductLookup", "check_similarity_bind", "product_table", "similarity_app"]

log = logging.getLogger(__name__)

Product = Mapping[str, Any]
ProductLookup = Mapping[str, Product] | Callable[[str], Product | None]
MAX_RESULTS = 20
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp"})
REMOTE_IMAGE_MAX_SIDE = 512
CACHE_IMAGES = "public, max-age=3600"
PAGES = Path(__file__).resolve().parent / "pages"
SERVICE = "the similarity judge"
TOKEN_HINT = "pass --token (or set PRODCAT_SIMILARITY_TOKEN)"
TOKEN_COOKIE = "prodcat_similarity_token"


def check_similarity_bind(host: str, token: str | None) -> None:
    """Refuse a non-loopback bind without a token (anyone on the network could change the judgements).

    :func:`prodcat.web.check_bind` with this app's name and token option in the message.
    """
    check_bind(host, token, service=SERVICE, token_hint=TOKEN_HINT)


def product_table(records: Iterable[ProductRecord | Mapping[str, Any]],
                  taxonomy: Taxonomy | None = None) -> dict[str, dict[str, Any]]:
    """id -> {id, title, image_url, category, level2, level2_name} for the app's lookup; unparseable
    records are skipped. ``level2`` is the id the index holds (:func:`embedder.bulk.level_ids`, with
    the ``taxonomy`` the catalogue was embedded with), ``level2_name`` its name."""
    table: dict[str, dict[str, Any]] = {}
    for raw in records:
        try:
            record = raw if isinstance(raw, ProductRecord) else parse_record(raw)
        except InvalidRecord:
            continue
        path = true_category_path(record)
        levels = level_ids(path, taxonomy)
        table[record.id] = {"id": record.id, "title": record.title or "", "image_url": record.image_url,
                            "category": " > ".join(path), "level2": levels[1] if levels else None,
                            "level2_name": path[1] if levels else None}
    return table


class _Products:
    """Lookup by id, and (for a mapping) substring search and random picks."""

    def __init__(self, products: ProductLookup) -> None:
        self._mapping = products if isinstance(products, Mapping) else None
        self._lookup = products.get if isinstance(products, Mapping) else products
        self._ids = list(products) if isinstance(products, Mapping) else []
        # level-2 id -> name, from the products' own paths (a callable lookup has none: ids are shown)
        self._names = {p["level2"]: p["level2_name"] for p in products.values()
                       if p.get("level2") and p.get("level2_name")} if isinstance(products, Mapping) else {}

    def level2_name(self, level2: str | None) -> str | None:
        """What the page shows for a level-2 id: its name where a product tells it, else the id."""
        return None if level2 is None else self._names.get(level2, level2)

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
         "level2_name": products.level2_name(h.level2), "title": (products.get(h.id) or {}).get("title") or ""}
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
    body = {**_brief(product_id, product), "indexed": bool(stored), "level1": None, "level2": None,
            "level2_name": None}
    if stored:
        body.update(level1=stored[0].level1, level2=stored[0].level2, model_version=stored[0].model_version,
                    level2_name=request.app[_PRODUCTS].level2_name(stored[0].level2))
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
    products = request.app[_PRODUCTS]
    return web.json_response({level2: {**row, "name": products.level2_name(level2)}
                              for level2, row in request.app[_STORE].summary(k).items()})


async def _home(request: web.Request) -> web.Response:
    raise web.HTTPFound("/judge")  # our own page; never a redirect to a product URL


def similarity_app(index: ImageIndex, judgements: JudgementStore, image_root: Path | None,
                   products: ProductLookup, *, fetcher: ImageFetcher | None = None, host: str = "127.0.0.1",
                   token: str | None = None) -> web.Application:
    """The app over an open index and judgement store.

    ``products`` maps id -> {title, image_url, category} (see ``product_table``), or is a
    callable id -> product; a callable gives no substring search (exact id only) and no random
    pick. ``image_root``: the folder local image files may be served from (None: none are).
    ``fetcher`` fetches remote images; the default refuses private addresses and local files.
    ``host`` is where it will listen and ``token`` the secret every request must then present
    (:func:`prodcat.web.access_middleware`): a non-loopback ``host`` without a token raises
    :class:`~prodcat.errors.ConfigError`.
    """
    access = access_middleware(host, token, service=SERVICE, token_hint=TOKEN_HINT, cookie=TOKEN_COOKIE)
    app = web.Application(middlewares=[access, _json_errors])
    app[_INDEX] = index
    app[_STORE] = judgements
    app[_PRODUCTS] = _Products(products)
    app[_FETCHER] = fetcher or ImageFetcher()
    app[_ROOT] = Path(image_root).resolve() if image_root is not None else None
    app.router.add_get("/", _home)
    serve_page(app, "/judge", PAGES / "judge.html", assets=[PAGES / "judge.css", PAGES / "judge.js"])
    app.router.add_get("/similar/{product_id}", _similar)
    app.router.add_get("/products", _search_products)
    app.router.add_get("/products/{product_id}", _product)
    app.router.add_get("/random", _random)
    app.router.add_get("/images/{product_id}", _image)
    app.router.add_get("/judgements", _judgements)
    app.router.add_post("/judgements", _add_judgement)
    app.router.add_get("/judgements/summary", _summary)
    return app
