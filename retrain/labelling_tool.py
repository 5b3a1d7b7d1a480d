"""The labelling tool: people label the products the worker finds uncertain.

``labelling_app(settings, taxonomy, token=...)`` builds an aiohttp application that

- reads ``labelling.requests`` in its OWN consumer group (``<consumer_group>-labelling``) on a
  background thread into a small in-memory queue, most informative (highest priority) first;
- serves one product at a time to each labeller (a short lease, so two people do not get the
  same product) and never offers a product again once it was labelled in this session;
- publishes every decision as one ``labelling.labels`` message (key = product id, value
  ``{product_id, category, positive, labeller, labelled_at}``, checked with
  :class:`~retrain.labels.HumanLabel` first) and answers once Kafka has acknowledged it.

Offsets are committed only up to the oldest request not yet labelled (per partition): a tool
that stops loses nothing; after a restart a few requests may come again, which is harmless
because the label store keeps each labeller's last decision.

Endpoints: ``GET /`` (the page), ``GET /next``, ``POST /skip``, ``POST /labels``,
``POST /labeller``, ``GET /categories``, ``GET /images/{product_id}``, ``GET /stats``.

Access: bound to a non-loopback address the tool refuses to start without a token; with a
token every request needs it (``Authorization: Bearer``, ``X-Prodcat-Token``, or the cookie
set by opening ``/?token=...`` once).
"""

from __future__ import annotations

import asyncio
import heapq
import hmac
import io
import ipaddress
import itertools
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, unquote

from aiohttp import web
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from PIL import Image
from pydantic import ValidationError

from embedder.fetch import ImageFetcher
from prodcat.errors import ConfigError
from prodcat.settings import Settings
from prodcat.taxonomy import Taxonomy
from prodcat.web import blocking, json_error, json_object, page
from retrain.labels import HumanLabel, LabelStore

__all__ = ["RequestQueue", "check_bind", "labelling_app"]

log = logging.getLogger(__name__)

TOKEN_COOKIE = "prodcat_label_token"
LABELLER_COOKIE = "prodcat_labeller"
LEASE_S = 15 * 60
MAX_QUEUE = 500
DELIVERY_TIMEOUT_S = 30.0
STORE_TIMEOUT_S = 2.0
IMAGE_MAX_SIDE = 512
_LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost", "ip6-loopback"})


def check_bind(host: str, token: str | None) -> None:
    """Refuse a non-loopback bind without a token (anyone on the network could publish labels)."""
    if token:
        return
    name = host.strip().strip("[]").lower()
    try:
        loopback = ipaddress.ip_address(name).is_loopback
    except ValueError:
        loopback = name in _LOOPBACK_NAMES
    if not loopback:
        raise ConfigError(f"the labelling tool would listen on {host!r}, which is not a loopback address, "
                          "without a token: pass --token (or set PRODCAT_LABELLING_TOKEN), or bind to 127.0.0.1")


# --- the queue -----------------------------------------------------------------------------


@dataclass
class _Item:
    request: dict[str, Any]
    priority: float
    partition: tuple[str, int]
    offsets: list[int]
    leased_by: str | None = None
    leased_until: float = 0.0
    skipped_by: set[str] = field(default_factory=set)


class RequestQueue:
    """Labelling requests by priority, leases per labeller, and the offsets safe to commit.

    Thread-safe: the consumer thread adds, the web handlers take and finish.
    """

    def __init__(self, max_size: int = MAX_QUEUE, lease_s: float = LEASE_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_size = max_size
        self.lease_s = lease_s
        self._clock = clock
        self._lock = threading.Lock()
        self._items: dict[str, _Item] = {}
        self._heap: list[tuple[float, int, str]] = []
        self._seq = itertools.count()
        self._labelled: set[str] = set()
        self._pending: dict[tuple[str, int], set[int]] = {}
        self._seen: dict[tuple[str, int], int] = {}

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    @property
    def full(self) -> bool:
        return len(self) >= self.max_size

    @property
    def labelled(self) -> int:
        with self._lock:
            return len(self._labelled)

    def add(self, request: dict[str, Any], topic: str, partition: int, offset: int) -> bool:
        """Queue one request; False if its product was already labelled in this session."""
        tp = (topic, partition)
        product_id = request["id"]
        with self._lock:
            self._seen[tp] = max(self._seen.get(tp, -1), offset)
            if product_id in self._labelled:
                return False
            self._pending.setdefault(tp, set()).add(offset)
            priority = _number(request.get("priority"))
            old = self._items.get(product_id)
            if old is not None:  # a newer request for the same product: newer snapshot, same lease
                old.request, old.priority = request, priority
                old.offsets.append(offset)
            else:
                self._items[product_id] = _Item(request, priority, tp, [offset])
            heapq.heappush(self._heap, (-priority, next(self._seq), product_id))
            return True

    def take(self, labeller: str) -> dict[str, Any] | None:
        """The labeller's leased product, else the best free one (leased to them now), else None."""
        now = self._clock()
        with self._lock:
            for item in self._items.values():
                if item.leased_by == labeller and item.leased_until > now:
                    item.leased_until = now + self.lease_s
                    return item.request
            kept, found = [], None
            while self._heap:
                entry = heapq.heappop(self._heap)
                item = self._items.get(entry[2])
                if item is None or entry[0] != -item.priority:
                    continue  # labelled, dropped, or superseded by a newer request
                kept.append(entry)
                if labeller in item.skipped_by or (item.leased_by not in (None, labeller) and item.leased_until > now):
                    continue
                item.leased_by, item.leased_until = labeller, now + self.lease_s
                found = item.request
                break
            for entry in kept:
                heapq.heappush(self._heap, entry)
            return found

    def get(self, product_id: str) -> dict[str, Any] | None:
        with self._lock:
            item = self._items.get(product_id)
            return item.request if item is not None else None

    def ignore(self, topic: str, partition: int, offset: int) -> None:
        """An unusable message: nothing to label, its offset may be committed."""
        with self._lock:
            self._seen[(topic, partition)] = max(self._seen.get((topic, partition), -1), offset)

    def skip(self, product_id: str, labeller: str) -> None:
        """Not for this labeller: release the lease; others may still get it."""
        with self._lock:
            item = self._items.get(product_id)
            if item is not None:
                item.skipped_by.add(labeller)
                if item.leased_by == labeller:
                    item.leased_by, item.leased_until = None, 0.0

    def done(self, product_id: str) -> None:
        """Labelled: out of the queue for good (this session), its offsets may be committed."""
        with self._lock:
            self._labelled.add(product_id)
            item = self._items.pop(product_id, None)
            if item is not None:
                self._pending.get(item.partition, set()).difference_update(item.offsets)

    def drop_partitions(self, partitions: set[tuple[str, int]]) -> None:
        """Rebalance: these partitions went to another tool, and so do their requests."""
        with self._lock:
            for product_id in [p for p, item in self._items.items() if item.partition in partitions]:
                del self._items[product_id]
            for tp in partitions:
                self._pending.pop(tp, None)
                self._seen.pop(tp, None)

    def commit_offsets(self) -> dict[tuple[str, int], int]:
        """Per partition, the next offset to read after a restart: the oldest request not labelled."""
        with self._lock:
            return {tp: min(self._pending[tp]) if self._pending.get(tp) else seen + 1
                    for tp, seen in self._seen.items()}


def _number(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return number if number == number else 0.0  # NaN sorts nowhere: treat as 0


def parse_request(raw: bytes | None) -> dict[str, Any] | None:
    """A labelling.requests value as a dict with a non-empty string ``id``; None if unusable."""
    try:
        data = json.loads(raw or b"")
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not data["id"].strip():
        return None
    if not isinstance(data.get("product"), dict):
        data["product"] = {}
    return data


# --- Kafka ---------------------------------------------------------------------------------


class _RequestReader:
    """The consumer thread: polls labelling.requests into the queue, pauses while it is full."""

    def __init__(self, settings: Settings, queue: RequestQueue, group: str) -> None:
        self.settings, self.queue, self.group = settings, queue, group
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="labelling-requests", daemon=True)
        self.error: str | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(15)

    def _run(self) -> None:
        consumer = Consumer({**self.settings.kafka_client_config(), "group.id": self.group,
                             "auto.offset.reset": "earliest", "enable.auto.commit": False,
                             "log_level": 0})

        def revoked(cons: Consumer, partitions: list[TopicPartition]) -> None:
            self._commit(cons, asynchronous=False)
            self.queue.drop_partitions({(p.topic, p.partition) for p in partitions})

        consumer.subscribe([self.settings.topic_label_requests], on_revoke=revoked)
        paused, last_commit, committed = False, time.monotonic(), {}
        try:
            while not self._stop.is_set():
                full = self.queue.full
                if full != paused:
                    assignment = consumer.assignment()
                    if assignment or not full:  # nothing assigned yet: pause once there is
                        (consumer.pause if full else consumer.resume)(assignment)
                        paused = full
                msg = consumer.poll(0.2)
                if msg is not None:
                    if msg.error():
                        self.error = str(msg.error())
                        log.warning("labelling requests: %s", msg.error())
                    else:
                        self.error = None
                        request = parse_request(msg.value())
                        if request is None:
                            log.warning("labelling request at %s[%d]@%d is not a JSON object with an id; skipped",
                                        msg.topic(), msg.partition(), msg.offset())
                            self.queue.ignore(msg.topic(), msg.partition(), msg.offset())
                        else:
                            self.queue.add(request, msg.topic(), msg.partition(), msg.offset())
                if time.monotonic() - last_commit > 2.0:
                    committed = self._commit(consumer, asynchronous=True, previous=committed)
                    last_commit = time.monotonic()
            self._commit(consumer, asynchronous=False)
        except Exception as exc:  # noqa: BLE001 - reported on /stats; the page keeps what it has
            self.error = f"{type(exc).__name__}: {exc}"
            log.exception("labelling request reader stopped")
        finally:
            consumer.close()

    def _commit(self, consumer: Consumer, *, asynchronous: bool,
                previous: dict[tuple[str, int], int] | None = None) -> dict[tuple[str, int], int]:
        offsets = self.queue.commit_offsets()
        changed = [TopicPartition(t, p, o) for (t, p), o in offsets.items() if (previous or {}).get((t, p)) != o]
        if changed:
            try:
                consumer.commit(offsets=changed, asynchronous=asynchronous)
            except KafkaException as exc:
                log.warning("labelling requests: commit failed (%s); will retry", exc)
                return previous or {}
        return offsets


class _LabelPublisher:
    """labelling.labels: one message per decision, key = product id, waits for acknowledgement."""

    def __init__(self, settings: Settings) -> None:
        self.topic = settings.topic_labels
        self._producer = Producer({**settings.kafka_client_config(), "acks": "all", "enable.idempotence": True,
                                   "linger.ms": 5, "log_level": 0})
        self._lock = threading.Lock()

    def publish(self, labels: list[HumanLabel]) -> None:
        errors: list[str] = []

        def delivered(err: Any, _msg: Any) -> None:
            if err is not None:
                errors.append(str(err))

        with self._lock:  # one flush at a time: each request waits for its own messages
            for label in labels:
                value = json.dumps({"product_id": label.product_id, "category": label.category,
                                    "positive": label.positive, "labeller": label.labeller,
                                    "labelled_at": label.labelled_at.isoformat()}).encode()
                self._producer.produce(self.topic, key=label.product_id.encode(), value=value, on_delivery=delivered)
            left = self._producer.flush(DELIVERY_TIMEOUT_S)
        if left or errors:
            raise _Unavailable(f"Kafka did not acknowledge {len(errors) or left} label(s) on {self.topic}: "
                               f"{errors[:2] or 'timed out'}; nothing was lost on your side, submit again")

    def close(self) -> None:
        self._producer.flush(5)


class _Unavailable(Exception):
    pass


# --- the app -------------------------------------------------------------------------------


@dataclass
class _State:
    settings: Settings
    taxonomy: Taxonomy
    token: str | None
    queue: RequestQueue
    fetcher: ImageFetcher
    store: LabelStore | None
    reader: _RequestReader | None = None
    publisher: _LabelPublisher | None = None
    published: Counter[str] = field(default_factory=Counter)


_STATE: web.AppKey[_State] = web.AppKey("labelling", _State)


def _presented_token(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.headers.get("X-Prodcat-Token") or request.cookies.get(TOKEN_COOKIE)


@web.middleware
async def _access(request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
    token = request.app[_STATE].token
    if token is None:
        return await handler(request)
    offered = request.query.get("token") if request.path == "/" and request.method == "GET" else None
    if offered is not None and hmac.compare_digest(offered.encode(), token.encode()):
        response = web.Response(status=302, headers={"Location": "/"})  # the token leaves the address bar
        response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="Strict", secure=request.secure)
        return response
    presented = _presented_token(request)
    if presented is None or not hmac.compare_digest(presented.encode(), token.encode()):
        return json_error(401, "this labelling tool needs its token: open /?token=<token> once, "
                           "or send Authorization: Bearer <token>")
    return await handler(request)


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
            "id": entry["id"], "known": known, "score": _number(entry.get("score")), "decided": entry["id"] in decided,
            "name": taxonomy.path_str(entry["id"]) if known else str(entry.get("name") or entry["id"]),
            "why": [str(w) for w in explanation.get(entry["id"], [])][:5],
        })
    return {
        "id": request_msg["id"],
        "title": product.get("title") or "", "brand": product.get("brand") or "",
        "raw_category": product.get("category") or "", "description": (product.get("description") or "")[:2000],
        "has_image": bool(product.get("image_url")),
        "categories": categories,
        "reason": request_msg.get("reason") or "", "priority": _number(request_msg.get("priority")),
        "uncertainty": request_msg.get("uncertainty"), "disagreement": request_msg.get("disagreement"),
        "model_version": request_msg.get("model_version") or "",
    }


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
    labels: dict[str, HumanLabel] = {}
    for decision in decisions:
        try:
            label = HumanLabel.model_validate(
                {**(decision if isinstance(decision, dict) else {}), "product_id": product_id,
                 "labeller": labeller, "labelled_at": now}, context={"taxonomy": state.taxonomy})
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            return json_error(400, f"invalid decision {str(decision)[:80]}: {problems}")
        labels[label.category] = label  # the last decision on a category wins
    try:
        await blocking(state.publisher.publish, list(labels.values()))
    except (_Unavailable, KafkaException, BufferError) as exc:
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
        except Exception as exc:  # noqa: BLE001 - optional figure; never fail the page for it
            log.debug("label store counts unavailable: %s", exc)
    return web.json_response({
        "queue": len(state.queue), "labelled": state.queue.labelled,
        "published": dict(state.published.most_common()), "stored": stored,
        "reader_error": state.reader.error if state.reader else None,
    })


async def _page(request: web.Request) -> web.Response:
    return web.Response(text=LABEL_PAGE, content_type="text/html", headers={
        "Content-Security-Policy": "default-src 'self'; img-src 'self'; style-src 'unsafe-inline'; "
                                   "script-src 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'",
        "Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
    })


async def _kafka(app: web.Application):
    state = app[_STATE]
    state.publisher = _LabelPublisher(state.settings)
    state.reader = _RequestReader(state.settings, state.queue, f"{state.settings.consumer_group}-labelling")
    state.reader.start()
    yield
    await blocking(state.reader.stop)
    await blocking(state.publisher.close)


def labelling_app(settings: Settings, taxonomy: Taxonomy, *, token: str | None, host: str = "127.0.0.1",
                  fetcher: ImageFetcher | None = None, store: LabelStore | None = None,
                  max_queue: int = MAX_QUEUE) -> web.Application:
    """The labelling tool for ``taxonomy``; Kafka is reached when the app starts.

    ``host`` is where it will listen: not a loopback address and no ``token`` raises
    :class:`~prodcat.errors.ConfigError`. ``fetcher`` fetches product images (default: private
    addresses and local files refused). ``store`` (optional) adds stored per-labeller counts to
    ``/stats``.
    """
    check_bind(host, token)
    if token is not None and len(token) < 8:
        raise ConfigError(f"expected a labelling token of at least 8 characters, received {len(token)}")
    app = web.Application(middlewares=[_access])
    app[_STATE] = _State(settings, taxonomy, token, RequestQueue(max_queue), fetcher or ImageFetcher(), store)
    app.cleanup_ctx.append(_kafka)
    app.router.add_get("/", _page)
    app.router.add_get("/next", _next)
    app.router.add_post("/labeller", _set_labeller)
    app.router.add_post("/skip", _skip)
    app.router.add_post("/labels", _labels)
    app.router.add_get("/categories", _categories)
    app.router.add_get("/images/{product_id}", _image)
    app.router.add_get("/stats", _stats)
    return app


LABEL_PAGE = page(r"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>prodcat · labelling</title>
<style>
/* prodcat:theme */
header { display: flex; align-items: center; gap: 18px; padding: 10px 24px; background: #1c2230; color: #fff; }
header h1 { margin: 0; font-size: 16px; font-weight: 600; }
header h1 span { color: #8fb0ff; font-weight: 500; }
header .spacer { flex: 1; }
header .stat { font-size: 13px; color: #c8cfdb; }
header .stat b { color: #fff; }
.layout { display: grid; grid-template-columns: 1fr 330px; gap: 18px; padding: 18px 24px; align-items: start; }
.panel { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 14px; margin-bottom: 18px; }
.panel h2 { margin: 0 0 10px; font-size: 13px; text-transform: uppercase; letter-spacing: .6px; color: var(--muted); }
#product { display: flex; gap: 20px; }
.thumb { width: 220px; height: 280px; flex: none; background: #fafbfc; border-radius: 8px; display: flex;
         align-items: center; justify-content: center; overflow: hidden; }
.thumb img { width: 100%; height: 100%; object-fit: contain; }
.noimg { color: var(--muted); font-size: 12px; }
#product h2 { font-size: 20px; margin: 0 0 6px; text-transform: none; letter-spacing: 0; color: var(--ink); }
.meta { color: var(--muted); margin-bottom: 4px; }
.meta b { color: var(--ink); font-weight: 500; }
.desc { margin-top: 8px; max-height: 120px; overflow: auto; font-size: 13px; color: #384152; }
.why { margin-top: 8px; font-size: 12px; color: #8a5a00; background: #fff6e5; border-radius: 6px; padding: 4px 8px; display: inline-block; }
#cats { list-style: none; margin: 0; padding: 0; }
#cats li { display: flex; align-items: center; gap: 10px; border: 2px solid var(--line); border-radius: 8px;
           padding: 7px 10px; margin-bottom: 8px; cursor: pointer; }
#cats li .n { font: 12px ui-monospace, monospace; background: #f1f3f6; border: 1px solid #d5d9e0; border-radius: 4px;
              padding: 0 6px; }
#cats li .name { flex: 1; }
#cats li .score { font-variant-numeric: tabular-nums; color: var(--muted); width: 48px; text-align: right; }
#cats li .bar { width: 90px; height: 6px; background: var(--line); border-radius: 3px; overflow: hidden; }
#cats li .bar div { height: 100%; background: var(--accent); }
#cats li .tag { font-size: 11px; color: var(--muted); }
#cats li .rule { font-size: 11px; color: #8a5a00; }
#cats li .mark { width: 70px; text-align: center; font-weight: 600; font-size: 12px; }
#cats li.yes { border-color: var(--good); background: var(--good-bg); }
#cats li.yes .mark { color: var(--good); }
#cats li.no { border-color: var(--bad); background: var(--bad-bg); }
#cats li.no .mark { color: var(--bad); }
#tree input { width: 100%; padding: 7px 10px; border: 1px solid var(--line); border-radius: 6px; font: inherit; }
#treelist { list-style: none; margin: 8px 0 0; padding: 0; max-height: 330px; overflow-y: auto; font-size: 13px; }
#treelist li { padding: 3px 6px; border-radius: 5px; cursor: pointer; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
#treelist li.ctx { color: var(--muted); cursor: default; }
#treelist li.hit.active { background: var(--accent); color: #fff; }
#treelist li.hit:not(.active):hover { background: #eef2fb; }
kbd { font: 11px ui-monospace, monospace; background: #f1f3f6; border: 1px solid #d5d9e0; border-bottom-width: 2px;
      border-radius: 4px; padding: 0 4px; color: var(--ink); }
.keys { color: var(--muted); font-size: 12px; line-height: 2; }
table { width: 100%; border-collapse: collapse; font-size: 13px; }
td { padding: 4px; border-bottom: 1px solid var(--line); }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.empty { color: var(--muted); padding: 30px 10px; text-align: center; }
#status { min-height: 18px; font-size: 13px; margin-top: 4px; color: var(--bad); }
#status.ok { color: var(--good); }
#who { position: fixed; inset: 0; background: rgba(28,34,48,.55); display: none; align-items: center; justify-content: center; }
#who.show { display: flex; }
#who form { background: #fff; padding: 24px; border-radius: 12px; width: 360px; }
#who input { width: 100%; padding: 8px 10px; font: inherit; border: 1px solid var(--line); border-radius: 6px; margin: 10px 0; }
</style>
</head>
<body>
<header>
  <h1>prodcat <span>· labelling</span></h1>
  <div class="spacer"></div>
  <span class="stat">labeller <b id="labeller">–</b></span>
  <span class="stat">labelled this session <b id="done">0</b></span>
  <span class="stat">in queue <b id="queue">0</b></span>
</header>
<div class="layout">
  <main>
    <div class="panel" id="productpanel"><div class="empty">Loading…</div></div>
    <div class="panel">
      <h2>Categories <span class="keys">— <kbd>1</kbd>…<kbd>9</kbd> accept → reject → undecided</span></h2>
      <ul id="cats"></ul>
      <div id="status" role="status"></div>
    </div>
  </main>
  <aside>
    <div class="panel" id="tree">
      <h2>Add a category <kbd>/</kbd></h2>
      <input id="search" type="search" placeholder="type to filter the taxonomy…" autocomplete="off">
      <ul id="treelist"></ul>
    </div>
    <div class="panel">
      <h2>Keys</h2>
      <div class="keys"><kbd>1</kbd>-<kbd>9</kbd> toggle a category · <kbd>/</kbd> search the tree ·
        <kbd>↑</kbd><kbd>↓</kbd> + <kbd>Enter</kbd> add as positive · <kbd>Esc</kbd> back ·
        <kbd>Enter</kbd> submit · <kbd>s</kbd> skip</div>
    </div>
    <div class="panel">
      <h2>Labels by labeller</h2>
      <table id="stats"><tbody></tbody></table>
    </div>
  </aside>
</div>
<div id="who"><form id="whoform"><h2>Who is labelling?</h2>
  <div class="keys">Your name is recorded on every label you submit.</div>
  <input id="whoname" autocomplete="name" maxlength="100" placeholder="your name"></form></div>
<script>
// prodcat:dom
const state = { item: null, rows: [], categories: [], hits: [], active: 0, busy: false };
async function api(path, options) {
  const response = await fetch(path, Object.assign({ credentials: "same-origin" }, options));
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}
const post = (path, body) => api(path, { method: "POST", headers: { "Content-Type": "application/json" },
                                         body: JSON.stringify(body) });
function say(message, ok) { const s = $("#status"); s.textContent = message || ""; s.className = ok ? "ok" : ""; }
function cookie(name) {
  const hit = document.cookie.split("; ").find((c) => c.startsWith(name + "="));
  return hit ? decodeURIComponent(hit.slice(name.length + 1).replace(/^"|"$/g, "")) : "";
}
const labeller = () => cookie("prodcat_labeller");

function askName() {
  $("#who").classList.add("show");
  $("#whoname").focus();
  document.body.dataset.state = "name";
}
$("#whoform").addEventListener("submit", async (e) => {
  e.preventDefault();
  try {
    await post("/labeller", { name: $("#whoname").value });
    $("#who").classList.remove("show");
    $("#whoname").blur();
    await next();
  } catch (err) { alert(err.message); }
});

let waiting = null;
async function next() {
  clearTimeout(waiting);
  $("#labeller").textContent = labeller() || "–";
  document.body.dataset.state = "loading";
  try {
    const r = await api("/next");
    $("#done").textContent = r.labelled; $("#queue").textContent = r.queue;
    state.item = r.request;
    state.rows = r.request ? r.request.categories.map((c) => Object.assign({ mark: null }, c)) : [];
    render();
    if (!r.request) {
      say(r.reader_error ? "Kafka: " + r.reader_error : "");
      waiting = setTimeout(next, 2000);
    }
    document.body.dataset.state = r.request ? "ready" : "empty";
  } catch (e) { say(e.message); document.body.dataset.state = "error"; waiting = setTimeout(next, 3000); }
  stats();
}

function render() {
  const p = state.item;
  if (!p) {
    $("#productpanel").replaceChildren(el("div", { class: "empty", text: "Nothing to label right now; waiting for requests…" }));
    $("#cats").replaceChildren();
    return;
  }
  const box = el("div", { class: "thumb" });
  if (p.has_image) {
    const img = el("img", { src: "/images/" + encodeURIComponent(p.id), alt: "" });
    img.addEventListener("error", () => box.replaceChildren(el("span", { class: "noimg", text: "image unavailable" })));
    box.append(img);
  } else box.append(el("span", { class: "noimg", text: "no image" }));
  const meta = (label, value) => value ? el("div", { class: "meta" }, label + " ", el("b", { text: value })) : null;
  $("#productpanel").replaceChildren(el("div", { id: "product", "data-id": p.id }, box,
    el("div", {}, el("h2", { text: p.title || "(no title)" }), meta("brand", p.brand), meta("feed category", p.raw_category),
      meta("id", p.id), el("div", { class: "desc", text: p.description || "" }),
      p.reason ? el("div", { class: "why", text: "asked because " + p.reason + (p.model_version ? " · model " + p.model_version : "") }) : null)));
  renderRows();
}

function renderRows() {
  const marks = { true: "✓ yes", false: "✗ no" };
  $("#cats").replaceChildren(...state.rows.map((c, i) => el("li", {
      class: c.mark === true ? "yes" : c.mark === false ? "no" : "", "data-id": c.id, onclick: () => toggle(i) },
    el("span", { class: "n", text: i < 9 ? String(i + 1) : "·" }),
    el("span", { class: "name" }, c.name, c.added ? el("span", { class: "tag", text: "  (added)" }) : null,
      c.decided ? el("span", { class: "tag", text: "  model: yes" }) : null,
      c.why && c.why.length ? el("div", { class: "rule", text: "rules: " + c.why.join(", ") }) : null),
    c.added ? null : el("span", { class: "bar" }, el("div", { style: "width:" + Math.round(100 * c.score) + "%" })),
    c.added ? null : el("span", { class: "score", text: c.score.toFixed(2) }),
    el("span", { class: "mark", text: marks[c.mark] || "–" }))));
  if (!state.rows.length) $("#cats").append(el("li", { class: "empty", text: "the model proposed nothing: add categories with /" }));
}

function toggle(i) {
  const row = state.rows[i];
  if (!row || !row.known) { if (row) say("category " + row.id + " is not in this taxonomy"); return; }
  row.mark = row.mark === null ? true : row.mark === true ? false : null;
  renderRows();
}

async function submit() {
  if (!state.item || state.busy) return;
  const decisions = state.rows.filter((r) => r.mark !== null).map((r) => ({ category: r.id, positive: r.mark }));
  if (!decisions.length) { say("nothing decided: press 1-9 or add a category with /, or s to skip"); return; }
  state.busy = true;
  try {
    const r = await post("/labels", { product_id: state.item.id, decisions });
    say(`${r.published} label(s) sent for ${state.item.id}`, true);
    await next();
  } catch (e) { say("not sent: " + e.message); }
  finally { state.busy = false; }
}

async function skip() {
  if (!state.item) return;
  try { await post("/skip", { product_id: state.item.id }); say("skipped " + state.item.id, true); await next(); }
  catch (e) { say(e.message); }
}

// --- the searchable category tree ---------------------------------------------------------
function filterTree(text) {
  const words = text.toLowerCase().split(/\s+/).filter(Boolean);
  const list = $("#treelist");
  state.hits = []; state.active = 0;
  if (!words.length) { list.replaceChildren(); return; }
  const shown = new Map();
  for (const c of state.categories) {
    const path = c.path.join(" > ").toLowerCase();
    if (!words.every((w) => path.includes(w))) continue;
    state.hits.push(c);
    for (let d = 1; d < c.path.length; d++) {
      const key = c.path.slice(0, d).join(" > ");
      if (!shown.has(key)) shown.set(key, { label: c.path[d - 1], depth: d - 1, hit: null });
    }
    shown.set(c.path.join(" > "), { label: c.path[c.path.length - 1], depth: c.path.length - 1, hit: c });
    if (state.hits.length >= 60) break;
  }
  const rows = [...shown.entries()].sort((a, b) => a[0].localeCompare(b[0]));
  state.hits = rows.filter(([, v]) => v.hit).map(([, v]) => v.hit);
  list.replaceChildren(...rows.map(([key, v]) => el("li", {
      class: v.hit ? "hit" : "ctx", "data-id": v.hit ? v.hit.id : "", title: key,
      style: "padding-left:" + (6 + 16 * v.depth) + "px",
      onmousedown: v.hit ? (e) => { e.preventDefault(); addCategory(v.hit); } : null }, v.label)));
  if (!rows.length) list.append(el("li", { class: "ctx", text: "no category matches" }));
  highlight();
}
function highlight() {
  const hits = [...document.querySelectorAll("#treelist li.hit")];
  hits.forEach((li, i) => li.classList.toggle("active", i === state.active));
  if (hits[state.active]) hits[state.active].scrollIntoView({ block: "nearest" });
}
function addCategory(c) {
  if (!state.item) return;
  const existing = state.rows.find((r) => r.id === c.id);
  if (existing) existing.mark = true;
  else state.rows.push({ id: c.id, name: c.path.join(" > "), known: true, score: 0, added: true, mark: true, why: [] });
  renderRows();
  $("#search").value = ""; filterTree(""); $("#search").blur();
  say("added " + c.path.join(" > "), true);
}
$("#search").addEventListener("input", (e) => filterTree(e.target.value));
$("#search").addEventListener("keydown", (e) => {
  if (e.key === "ArrowDown" || e.key === "ArrowUp") {
    e.preventDefault();
    const n = state.hits.length;
    if (n) { state.active = (state.active + (e.key === "ArrowDown" ? 1 : n - 1)) % n; highlight(); }
  } else if (e.key === "Enter") {
    e.preventDefault(); e.stopPropagation();
    if (state.hits[state.active]) addCategory(state.hits[state.active]);
  } else if (e.key === "Escape") { $("#search").value = ""; filterTree(""); $("#search").blur(); }
});

document.addEventListener("keydown", (e) => {
  if (["INPUT", "SELECT", "TEXTAREA"].includes(e.target.tagName) || $("#who").classList.contains("show")) return;
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  if (/^[1-9]$/.test(e.key)) { e.preventDefault(); toggle(Number(e.key) - 1); }
  else if (e.key === "/") { e.preventDefault(); $("#search").focus(); }
  else if (e.key === "Enter") { e.preventDefault(); submit(); }
  else if (e.key === "s") { e.preventDefault(); skip(); }
});

async function stats() {
  try {
    const s = await api("/stats");
    const names = new Set([...Object.keys(s.published), ...Object.keys(s.stored || {})]);
    const rows = [...names].map((n) => el("tr", {}, el("td", { text: n }),
      el("td", { class: "num", title: "sent by this tool", text: s.published[n] || 0 }),
      el("td", { class: "num", title: "stored in total", text: s.stored ? (s.stored[n] || 0) : "" })));
    $("#stats tbody").replaceChildren(el("tr", {}, el("td", { class: "keys", text: "labeller" }),
      el("td", { class: "num keys", text: "session" }), el("td", { class: "num keys", text: s.stored ? "stored" : "" })),
      ...rows);
  } catch (e) { /* stats are optional */ }
}

(async () => {
  try { state.categories = await api("/categories"); } catch (e) { say(e.message); }
  if (labeller()) await next(); else askName();
})();
</script>
</body>
</html>
""")
