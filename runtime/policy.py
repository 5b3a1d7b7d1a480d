"""The stream's one error policy: outages are waited out, a record's own failure dead-letters it.

Every stage of a batch (parse, dedup, images, model, documents, each sink) runs through
:meth:`ErrorPolicy.run`:

- an **outage** (Elasticsearch, Redis, Milvus or the broker unreachable, timing out, or answering
  429/5xx) is retried with back-off, for as long as it lasts; meanwhile :class:`Health` is not
  ready and says which stage waits and why, so ``/health`` tells operators;
- any **other exception** belongs to the records the call was given: the batch is split in
  halves until the records that fail on their own are found, and only those become dead
  letters (stage + reason); the rest of the batch goes on. A model that fails on every record
  is thereby retried on smaller and smaller parts, and its records are dead-lettered with stage
  ``model``: nothing is ever written as "no category" because the model failed.

This module is the only place in the stream that catches an arbitrary exception.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import elastic_transport
from elasticsearch import ApiError
from pymilvus.exceptions import (
    ConnectError,
    ConnectionNotExistException,
    MilvusUnavailableException,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from prodcat.errors import Stage
from runtime.sinks.base import Sink, WriteResult

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class Outage(Exception):
    """A service is unavailable for now (raised by our own clients, e.g. the Kafka sink)."""


_OUTAGES: tuple[type[BaseException], ...] = (
    Outage, ConnectionError, TimeoutError,
    elastic_transport.ConnectionError, elastic_transport.ConnectionTimeout,
    RedisConnectionError, RedisTimeoutError,
    MilvusUnavailableException, ConnectError, ConnectionNotExistException,
)


def is_outage(exc: BaseException) -> bool:
    """True when ``exc`` says a service is unavailable (worth waiting for), not that the input is bad."""
    if isinstance(exc, ApiError):
        return exc.meta.status == 429 or exc.meta.status >= 500
    return isinstance(exc, _OUTAGES)


def describe(exc: BaseException, limit: int = 500) -> str:
    """A one-line reason: the exception's type and message, bounded."""
    text = " ".join(str(exc).split()) or "(no message)"
    return f"{type(exc).__name__}: {text}"[:limit]


class Health:
    """Which stages are waiting out an outage; ready when none is."""

    def __init__(self) -> None:
        self.waiting: dict[str, str] = {}

    @property
    def ready(self) -> bool:
        return not self.waiting

    def wait(self, stage: Stage, reason: str) -> None:
        self.waiting[str(stage)] = reason

    def recovered(self, stage: Stage) -> None:
        self.waiting.pop(str(stage), None)


@dataclass
class Isolated(Generic[T, R]):
    """A stage's outcome: each item with its result, or with the reason it failed."""

    ok: list[tuple[T, R]] = field(default_factory=list)
    failed: list[tuple[T, str]] = field(default_factory=list)


@dataclass
class Written(Generic[T]):
    """A sink write's outcome, by item."""

    ok: list[T] = field(default_factory=list)
    stale: list[T] = field(default_factory=list)
    failed: list[tuple[T, str]] = field(default_factory=list)


class ErrorPolicy:
    """Retries outages with capped exponential back-off; isolates and reports records that fail."""

    def __init__(self, health: Health | None = None, *, initial_backoff_s: float = 0.5, max_backoff_s: float = 10.0,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.health = health or Health()
        self.initial_backoff_s, self.max_backoff_s, self._sleep = initial_backoff_s, max_backoff_s, sleep

    async def call(self, stage: Stage, fn: Callable[[], Awaitable[R]]) -> R:
        """``await fn()``, retried while it fails with an outage; other exceptions propagate."""
        delay = self.initial_backoff_s
        while True:
            try:
                result = await fn()
            except Exception as exc:
                if not is_outage(exc):
                    raise
                self.health.wait(stage, describe(exc))
                log.warning("%s unavailable (%s); retrying in %.1fs", stage, describe(exc), delay)
                await self._sleep(delay)
                delay = min(2 * delay, self.max_backoff_s)
            else:
                self.health.recovered(stage)
                return result

    async def run(self, stage: Stage, items: Sequence[T],
                  fn: Callable[[Sequence[T]], Awaitable[Sequence[R]]]) -> Isolated[T, R]:
        """``fn(items)`` -> one result per item; the items a failure belongs to are found by halving."""
        outcome: Isolated[T, R] = Isolated()

        async def attempt(part: Sequence[T]) -> None:
            try:
                results = await self.call(stage, lambda: fn(part))
            except Exception as exc:  # the one place a record's own failure is caught: see the module doc
                if len(part) == 1:
                    log.warning("%s failed on one record: %s", stage, describe(exc))
                    outcome.failed.append((part[0], describe(exc)))
                    return
                mid = len(part) // 2
                await attempt(part[:mid])
                await attempt(part[mid:])
                return
            if len(results) != len(part):
                raise RuntimeError(f"{stage} returned {len(results)} results for {len(part)} items")
            outcome.ok.extend(zip(part, results, strict=True))

        if items:
            await attempt(list(items))
        return outcome

    async def write(self, stage: Stage, sink: Sink[T], items: Sequence[T]) -> Written[T]:
        """Write ``items`` to ``sink``: outages retried, refused records reported with the sink's reason."""
        async def per_item(part: Sequence[T]) -> list[str | bool]:
            result: WriteResult = await sink.write(part)
            return [result.failed.get(i, i not in result.stale) for i in range(len(part))]

        isolated = await self.run(stage, items, per_item)
        out: Written[T] = Written(failed=list(isolated.failed))
        for item, status in isolated.ok:
            if status is True:
                out.ok.append(item)
            elif status is False:
                out.stale.append(item)
            else:
                out.failed.append((item, f"{stage} refused it: {status}"))
        return out
