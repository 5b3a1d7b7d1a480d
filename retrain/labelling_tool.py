"""The labelling tool: people label the products the worker finds uncertain.

``labelling_app(settings, taxonomy, token=...)`` builds an aiohttp application that

- reads ``labelling.requests`` in its OWN consumer group (``<consumer_group>-labelling``) on a
  background thread into a small in-memory queue, most informative (highest priority) first
  (:mod:`retrain.labelling_queue`, :mod:`retrain.labelling_kafka`);
- serves one product at a time to each labeller (a short lease, so two people do not get the
  same product) and never offers a product again once it was labelled in this session;
- publishes every decision as one ``labelling.labels`` message (key = product id, value
  ``{product_id, category, positive, labeller, labelled_at, p, model_version}``, ``p`` and the
  version copied from the request, checked with :class:`~retrain.label_store.HumanLabel` first) and
  answers once Kafka has acknowledged it.

Offsets are committed only up to the oldest request not yet labelled (per partition): a tool
that stops loses nothing; after a restart a few requests may come again, which is harmless
because the label store keeps each labeller's last decision.

Endpoints: ``GET /`` (the page, ``retrain/pages/labelling.*``), ``GET /next``, ``POST /skip``,
``POST /labels``, ``POST /labeller``, ``GET /categories``, ``GET /images/{product_id}``,
``GET /stats``, ``GET /static/{name}``.

Access (:func:`prodcat.web.access_middleware`): bound to a non-loopback address the tool
refuses to start without a token; with a token every request needs it (``Authorization:
Bearer``, ``X-Prodcat-Token``, or the cookie set by opening ``/?token=...`` once); on loopback
the Host and Origin headers must be this server's.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from aiohttp import web
from confluent_kafka import KafkaException
from elasticsearch import ApiError, TransportError
from PIL import Image
from pydantic import ValidationError

from embedder.fetch import ImageFetcher
from prodcat import web as shared
from prodcat.settings import Settings
from prodcat.taxonomy import Taxonomy
from prodcat.web import blocking, json_error, json_object
from retrain.label_store import HumanLabel, LabelStore
from retrain.labelling_kafka import LabelPublisher, LabelsNotAcknowledged, RequestReader
from retrain.labelling_queue import MAX_QUEUE, RequestQueue, number_or_zero

__all__ = ["check_bind", "labelling_app", "request_fields"]

log = logging.getLogger(__name__)

PAGES = Path(__file__).resolve().parent / "pages"
SERVICE = "the labelling tool"
TOKEN_HINT = "pass --token (or set PRODCAT_LABELLING_TOKEN)"
TOKEN_COOKIE = "prodcat_label_token"
LABELLER_COOKIE = "prodcat_labeller"
STORE_TIMEOUT_S = 2.0
IMAGE_MAX_SIDE = 512


def check_bind(host: str, token: str | None) -> None:
    """Refuse a non-loopback bind without a token (anyone on the network could publish labels).

    :func:`prodcat.web.check_bind` with this tool's name and token setting in the message.
    """
    shared.check_bind(host, token, service=SERVICE, token_hint=TOKEN_HINT)


@dataclass
class _State:
    """What the handlers share: the taxonomy, the queue, the Kafka clients and the session's counts."""

    settings: Settings
    taxonomy: Taxonomy
    queue: RequestQueue
    fetcher: ImageFetcher
    store: LabelStore | None
    reader: RequestReader | None = None
    publisher: LabelPublisher | None = None
    published: Counter[str] = field(default_factory=Counter)


_STATE: web.AppKey[_State] = web.AppKey("labelling", _State)


def _labeller(request: web.Request) -> str | None:
    name = unquote(request.cookies.get(LABELLER_COOKIE) or "").strip()
    return name if name and len(name) <= 100 and "|" not in name else None


def _view(request_msg: dict[str, Any], taxonomy: Taxonomy) -> dict[str, Any]:
    """What the page shows: the snapshot, and the model's top categories named by OUR taxonomy."""
    product = request_msg.get("product") or {}
    decided = set(request_msg.get("decided") or [])
    explanation = request_msg.get("explanation") if isinstance(request_msg.get("explanation"), dict) else {}
    categories = []
    for entry in request_msg.get("top_categories") or []:
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            continue
        known = entry["id"] in taxonomy
        categories.append({
            "id": entry["id"], "known": known, "score": number_or_zero(entry.get("score")),
            "decided": entry["id"] in decided,
            "name": taxonomy.path_str(entry["id"]) if known else str(entry.get("name") or entry["id"]),
            "why": [str(w) for w in explanation.get(entry["id"], [])][:5],
        })
    return {
        "id": request_msg["id"],
        "title": product.get("title") or "", "brand": product.get("brand") or "",
        "raw_category": product.get("category") or "", "description": (product.get("description") or "")[:2000],
        "has_image": bool(product.get("image_url")),
        "categories": categories,
        "reason": request_msg.get("reason") or "", "priority": number_or_zero(request_msg.get("priority")),
        "uncertainty": request_msg.get("uncertainty"), "disagreement": request_msg.get("disagreement"),
        "model_version": request_msg.get("model_version") or "",
    }


def request_fields(request_msg: dict[str, Any] | None) -> dict[str, Any]:
    """What a label takes over from the request it answers: ``p`` (for the 1/p training weight) and
    the model version; nothing if the request is unknown or its ``p`` is not a probability (the
    label store then joins ``p`` from the worker's record of the request)."""
    if not request_msg:
        return {}
    out: dict[str, Any] = {}
    p = request_msg.get("p")
    if isinstance(p, (int, float)) and not isinstance(p, bool) and 0 < p <= 1:
        out["p"] = float(p)
    if isinstance(request_msg.get("model_version"), str) and request_msg["model_version"]:
        out["model_version"] = request_msg["model_version"]
    return out


async def _next(request: web.Request) -> web.Response:
    state = request.app[_STATE]
    labeller = _labeller(request)
    if labeller is None:
        return json_error(400, "enter your name first (POST /labeller)")
    found = state.queue.take(labeller)
    return web.json_response({"request": _view(found, state.taxonomy) if found else None,
                              "queue": len(state.queue), "labelled": state.queue.labelled,
                              "reader_error": state.reader.error if state.reader else None})


async def _set_labeller(request: web.Request) -> web.Response:
    body = await json_object(request)
    if isinstance(body, web.Response):
        return body
    name = body.get("name")
    if not isinstance(name, str) or not 0 < len(name.strip()) <= 100 or "|" in name:
        return json_error(400, f"expected a name of 1-100 characters without '|', received {str(name)[:40]!r}")
    response = web.json_response({"labeller": name.strip()})
    response.set_cookie(LABELLER_COOKIE, quote(name.strip(), safe=""), max_age=365 * 24 * 3600, samesite="Strict",
                        secure=request.secure)
    return response


async def _skip(request: web.Request) -> web.Response:
    body = await json_object(request)
    if isinstance(body, web.Response):
        return body
    labeller = _labeller(request)
    if labeller is None or not isinstance(body.get("product_id"), str):
        return json_error(400, "expected {product_id} and a labeller name (POST /labeller)")
    request.app[_STATE].queue.skip(body["product_id"], labeller)
    return web.json_response({"ok": True})


async def _labels(request: web.Request) -> web.Response:
    """{product_id, decisions: [{category, positive}]} -> one labelling.labels message each."""
    state = request.app[_STATE]
    body = await json_object(request)
    if isinstance(body, web.Response):
        return body
    labeller = _labeller(request)
    if labeller is None:
        return json_error(400, "enter your name first (POST /labeller)")
    product_id, decisions = body.get("product_id"), body.get("decisions")
    if not isinstance(product_id, str) or not isinstance(decisions, list) or not decisions:
        return json_error(400, "expected {product_id: str, decisions: [{category: id, positive: bool}, ...]} "
                           f"with at least one decision; received keys {sorted(body)[:5]}")
    now = datetime.now(timezone.utc)
    asked = request_fields(state.queue.get(product_id))
    labels: dict[str, HumanLabel] = {}
    for decision in decisions:
        try:
            label = HumanLabel.model_validate(
                {**(decision if isinstance(decision, dict) else {}), **asked, "product_id": product_id,
                 "labeller": labeller, "labelled_at": now}, context={"taxonomy": state.taxonomy})
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            return json_error(400, f"invalid decision {str(decision)[:80]}: {problems}")
        labels[label.category] = label  # the last decision on a category wins
    try:
        await blocking(state.publisher.publish, list(labels.values()))
    except (LabelsNotAcknowledged, KafkaException, BufferError) as exc:
        return json_error(503, str(exc))
    state.queue.done(product_id)
    state.published[labeller] += len(labels)
    return web.json_response({"ok": True, "published": len(labels)})


async def _categories(request: web.Request) -> web.Response:
    taxonomy = request.app[_STATE].taxonomy
    return web.json_response([{"id": c, "path": list(taxonomy.path(c))} for c in taxonomy.ids],
                             headers={"Cache-Control": "private, max-age=300"})


def _jpeg(image: Image.Image) -> bytes:
    image = image.copy()
    image.thumbnail((IMAGE_MAX_SIDE, IMAGE_MAX_SIDE))
    out = io.BytesIO()
    image.convert("RGB").save(out, format="JPEG", quality=85)
    return out.getvalue()


async def _image(request: web.Request) -> web.StreamResponse:
    """Only products in the queue, fetched here through the safe fetcher: the browser never sees a feed URL."""
    state = request.app[_STATE]
    product_id = request.match_info["product_id"]
    found = state.queue.get(product_id)
    url = ((found or {}).get("product") or {}).get("image_url")
    if not isinstance(url, str) or not url:
        return json_error(404, f"no image for product {product_id!r} in the queue")
    result = await blocking(state.fetcher.fetch, url)
    if not result.ok:
        return json_error(404, f"image of product {product_id!r} unavailable: {result.reason}")
    return web.Response(body=await blocking(_jpeg, result.image), content_type="image/jpeg",
                        headers={"Cache-Control": "private, max-age=600", "X-Content-Type-Options": "nosniff"})


async def _stats(request: web.Request) -> web.Response:
    state = request.app[_STATE]
    stored = None
    if state.store is not None:
        try:  # the store retries forever on an outage: an unreachable ES is simply "unknown" here
            stored = await asyncio.wait_for(state.store.counts_by_labeller(), STORE_TIMEOUT_S)
        except (TimeoutError, ApiError, TransportError) as exc:  # an optional figure: never fail the page for it
            log.debug("label store counts unavailable: %s", exc)
    return web.json_response({
        "queue": len(state.queue), "labelled": state.queue.labelled,
        "published": dict(state.published.most_common()), "stored": stored,
        "reader_error": state.reader.error if state.reader else None,
    })


async def _kafka(app: web.Application) -> AsyncIterator[None]:
    state = app[_STATE]
    state.publisher = LabelPublisher(state.settings)
    state.reader = RequestReader(state.settings, state.queue, f"{state.settings.consumer_group}-labelling")
    state.reader.start()
    yield
    await blocking(state.reader.stop)
    await blocking(state.publisher.close)


def labelling_app(settings: Settings, taxonomy: Taxonomy, *, token: str | None, host: str = "127.0.0.1",
                  fetcher: ImageFetcher | None = None, store: LabelStore | None = None,
                  max_queue: int = MAX_QUEUE) -> web.Application:
    """The labelling tool for ``taxonomy``; Kafka is reached when the app starts.

    ``host`` is where it will listen: not a loopback address and no ``token`` (or a token
    shorter than 8 characters) raises :class:`~prodcat.errors.ConfigError`. ``fetcher`` fetches
    product images (default: private addresses and local files refused). ``store`` (optional)
    adds stored per-labeller counts to ``/stats``.
    """
    access = shared.access_middleware(host, token, service=SERVICE, token_hint=TOKEN_HINT, cookie=TOKEN_COOKIE)
    app = web.Application(middlewares=[access])
    app[_STATE] = _State(settings, taxonomy, RequestQueue(max_queue), fetcher or ImageFetcher(), store)
    app.cleanup_ctx.append(_kafka)
    shared.serve_page(app, "/", PAGES / "labelling.html", assets=[PAGES / "labelling.css", PAGES / "labelling.js"])
    app.router.add_get("/next", _next)
    app.router.add_post("/labeller", _set_labeller)
    app.router.add_post("/skip", _skip)
    app.router.add_post("/labels", _labels)
    app.router.add_get("/categories", _categories)
    app.router.add_get("/images/{product_id}", _image)
    app.router.add_get("/stats", _stats)
    return app
