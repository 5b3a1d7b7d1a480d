"""The labelling tool's queue: requests by priority, a lease per labeller, the offsets safe to commit.

Plain data structures, no Kafka and no web: the consumer thread (``retrain.labelling_kafka``)
adds requests, the web handlers (``retrain.labelling_tool``) take and finish them.
"""

from __future__ import annotations

import heapq
import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LEASE_S", "MAX_QUEUE", "RequestQueue", "number_or_zero", "parse_request"]

LEASE_S = 15 * 60
MAX_QUEUE = 500


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
            priority = number_or_zero(request.get("priority"))
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


def number_or_zero(value: Any) -> float:
    """``value`` as a float; 0.0 if it is missing, not a number, or NaN."""
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
