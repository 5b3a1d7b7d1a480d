"""A hostile feed: every kind of message that once crashed, hung or corrupted the worker, plus valid
products in interleaved versions. Shared by the fuzz integration test and ``benchmarks/hostile.py``.

Each generated event says what must become of it: ``dead`` (a dead letter with a reason) or
``stored`` (categorised, with the product id and version Elasticsearch must hold in the end).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import orjson


@dataclass(frozen=True)
class FeedEvent:
    key: bytes | None
    value: bytes
    kind: str
    product_id: str | None = None  # for stored events: the id Elasticsearch must hold
    version: int | None = None  # for stored events: the marker of this version (in the title)

    @property
    def dead(self) -> bool:
        return self.product_id is None


T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _raw(value: str) -> bytes:
    return value.encode("utf-8", "surrogatepass")


# hostile kinds: (name, make(i) -> bytes); every one must be dead-lettered
DEAD: list[tuple[str, Callable[[int], bytes]]] = [
    ("nested arrays 5000", lambda i: b"[" * 5000 + b"]" * 5000),
    ("nested objects 300", lambda i: b'{"a":' * 300 + b"1" + b"}" * 300),
    ("nested arrays 900 in a product", lambda i: b'{"id":"n%d","title":"t","x":' % i + b"[" * 900 + b"]" * 900 + b"}"),
    ("id of 5000 chars", lambda i: orjson.dumps({"id": f"{i}-" + "x" * 5000, "title": "Cotton shorts"})),
    ("id of 200 euro signs", lambda i: orjson.dumps({"id": "€" * 200 + str(i), "title": "Cotton shorts"})),
    ("lone surrogate in id", lambda i: _raw(json.dumps({"id": f"s{i}\ud800", "title": "Cotton shorts"},
                                                        ensure_ascii=False))),
    ("escaped lone surrogate in title", lambda i: b'{"id":"t%d","title":"Shorts \\ud800"}' % i),
    ("lone surrogate in brand", lambda i: _raw(json.dumps({"id": f"b{i}", "title": "Shorts", "brand": "\udfff"},
                                                           ensure_ascii=False))),
    ("lone surrogate in an extra field", lambda i: b'{"id":"e%d","title":"Shorts","colour":"\\udc00"}' % i),
    ("object id", lambda i: orjson.dumps({"id": {"x": f"h{i}"}, "title": "Cotton shorts"})),
    ("nested object id", lambda i: orjson.dumps({"id": {"nested": i}, "title": "Cotton shorts"})),
    ("updated_at in 9999", lambda i: orjson.dumps({"id": f"f{i}", "title": "Shorts", "updated_at": "9999-01-01"})),
    ("updated_at 2026-13-45", lambda i: orjson.dumps({"id": f"f{i}", "title": "Shorts", "updated_at": "2026-13-45"})),
    ("updated_at year 10000", lambda i: orjson.dumps({"id": f"f{i}", "title": "Shorts", "updated_at": "10000-01-01"})),
    ("updated_at 1e20", lambda i: b'{"id":"f%d","title":"Shorts","updated_at":1e20}' % i),
    ("updated_at true", lambda i: orjson.dumps({"id": f"f{i}", "title": "Shorts", "updated_at": True})),
    ("NaN", lambda i: b'{"id":"nan%d","title":"Shorts","price":NaN}' % i),
    ("not UTF-8", lambda i: b'{"id":"u%d","title":"\xff\xfe"}' % i),
    ("not an object", lambda i: b"[1, 2, 3]"),
    ("empty", lambda i: b""),
    ("broken JSON", lambda i: b'{"id": "x%d", "title": ' % i),
    ("no id", lambda i: orjson.dumps({"title": f"Wireless mouse {i}"})),
    ("2,000 fields", lambda i: orjson.dumps({"id": f"w{i}", "title": "Shorts",
                                            **{f"f{j}": j for j in range(2000)}})),
    ("field name of 1000 chars", lambda i: orjson.dumps({"id": f"k{i}", "title": "Shorts", "k" * 1000: 1})),
    ("title of 900 KB", lambda i: orjson.dumps({"id": f"big{i}", "title": "x" * 900_000})),
    ("3 MB message, accepted compressed", lambda i: orjson.dumps({"id": f"huge{i}", "title": "y" * 3_000_000})),
    ("document over the size limit", lambda i: orjson.dumps({"id": f"d{i}", "title": "Shorts",
                                                            **{f"extra{j}": "z" * 19_000 for j in range(20)}})),
]
# sent rarely: a few of each is enough to prove the point and keeps the broker's disk small
LARGE = {"title of 900 KB", "3 MB message, accepted compressed", "document over the size limit"}


def _stored_oddities(i: int) -> list[tuple[str, str, dict]]:
    """Odd but valid products: stored under their own id, never merged into another product."""
    return [
        ("fullwidth id", f"ｈ４９-{i}", {"title": "Fullwidth id shorts"}),
        ("HTML id", f"<b>h49-{i}</b>", {"title": "HTML id shorts"}),
        ("array price", f"price-list-{i}", {"title": "Shorts", "price": [1, 2]}),
        ("price 1e309", f"price-inf-{i}", {"title": "Shorts", "price": "1e309"}),
    ]


def hostile_feed(n_valid: int, n_hostile: int, seed: int = 7, titles: list[str] | None = None) -> list[FeedEvent]:
    """``n_valid`` valid events (products in 1-3 versions, shuffled so older versions often come
    after newer ones, some back to back) and about ``n_hostile`` hostile ones, interleaved."""
    rng = random.Random(seed)
    titles = titles or ["Men's Slim Fit Casual Shirt", "Women's Cycling Shorts", "Canvas Sneakers"]
    valid: list[FeedEvent] = []
    product = 0
    while len(valid) < n_valid:
        pid, versions = f"v{product}", rng.choice([1, 1, 2, 3])
        title = rng.choice(titles)
        events = [FeedEvent(pid.encode(), orjson.dumps({
            "id": pid, "title": f"{title} version {v}",
            "updated_at": (T0 + timedelta(days=v, seconds=product)).isoformat()}), "valid", pid, v)
            for v in range(versions)]
        if versions > 1 and rng.random() < 0.5:
            events.reverse()  # newest first: the older versions that follow must lose
        valid.extend(events)
        product += 1
    hostile: list[FeedEvent] = []
    kinds = [k for k in DEAD if k[0] not in LARGE]
    i = 0
    while i < n_hostile:
        name, make = kinds[i % len(kinds)]
        hostile.append(FeedEvent(f"h{i}".encode() if i % 3 else None, make(i), name))
        if i % len(kinds) == 0:
            for odd, pid, fields in _stored_oddities(i):
                hostile.append(FeedEvent(pid.encode(), orjson.dumps({"id": pid, **fields}), odd, pid, 0))
        i += 1
    for name, make in DEAD:
        if name in LARGE:
            hostile.extend(FeedEvent(f"L{j}".encode(), make(j), name) for j in range(3))
    return interleave(valid, hostile, rng)


def interleave(valid: list[FeedEvent], hostile: list[FeedEvent], rng: random.Random) -> list[FeedEvent]:
    """Hostile events at random places; the valid events keep their relative order (per key, the
    order the versions were sent in is the order the worker sees them)."""
    slots = sorted(rng.sample(range(len(valid) + len(hostile)), len(hostile)))
    out, v, h = [], iter(valid), iter(hostile)
    taken = set(slots)
    for position in range(len(valid) + len(hostile)):
        out.append(next(h) if position in taken else next(v))
    return out


def expected_store(events: list[FeedEvent]) -> dict[str, int]:
    """Product id -> the version marker Elasticsearch must hold: the newest sent version."""
    newest: dict[str, int] = {}
    for e in events:
        if not e.dead:
            newest[e.product_id] = max(newest.get(e.product_id, -1), e.version)
    return newest


def batches(events: list[FeedEvent], size: int) -> Iterator[list[FeedEvent]]:
    for start in range(0, len(events), size):
        yield events[start:start + size]
