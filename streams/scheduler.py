"""Batches in flight: batch N+1 is prepared while batch N is written; deliveries and acks stay in order.

Faust's ``noack_take`` buffers nothing while the agent's loop body runs, so the agent hands each
batch to its own task and goes straight back to taking. This class is that loop, with no Faust
in it: it depends only on a handler (prepare / deliver) and an ack function, so unit tests
drive it with in-memory fakes.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterable, Awaitable, Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar

E = TypeVar("E")
E_contra = TypeVar("E_contra", contravariant=True)


class BatchHandler(Protocol[E_contra]):
    """What the scheduler runs per batch: CPU-bound preparation, then the sinks."""

    async def prepare(self, events: Sequence[E_contra]) -> Any: ...

    async def deliver(self, prepared: Any) -> None: ...


class BatchScheduler(Generic[E]):
    """Runs up to ``in_flight`` batches at once.

    Prepares run one at a time in the order batches were taken (the CPU work is serial anyway);
    each delivery waits for the one before it, so sinks see batches, and acks happen, in offset
    order. A failed batch fails every later one (they wait on it) and :meth:`run` raises it at
    once, even while no new batch arrives: the worker stops and the unacked events replay.
    """

    def __init__(self, handler: BatchHandler[E], ack: Callable[[Sequence[E]], Awaitable[None]], *,
                 in_flight: int = 2, before_batch: Callable[[Sequence[E]], Awaitable[None]] | None = None) -> None:
        if in_flight < 1:
            raise ValueError(f"Expected in_flight >= 1. Received {in_flight}; set PRODCAT_BATCHES_IN_FLIGHT.")
        self.handler, self.ack, self.in_flight, self.before_batch = handler, ack, in_flight, before_batch

    async def run(self, batches: AsyncIterable[Sequence[E]]) -> None:
        """Take batches until the source ends (unfinished batches are then dropped, unacked) or a batch fails."""
        tasks: deque[asyncio.Task] = deque()
        preparing = asyncio.Lock()  # FIFO: batches are prepared in the order they were taken
        failed: asyncio.Future = asyncio.get_running_loop().create_future()

        def watch(task: asyncio.Task) -> None:  # a failure must stop the loop now, not at the next batch
            error = None if task.cancelled() else task.exception()
            if error is not None and not failed.done():
                failed.set_exception(error)

        async def handle(events: Sequence[E], previous: asyncio.Task | None) -> None:
            async with preparing:
                prepared = await self.handler.prepare(events)
            if previous is not None:
                await previous
            await self.handler.deliver(prepared)
            await self.ack(events)

        source = aiter(batches)
        taken: asyncio.Future | None = None
        try:
            while True:
                taken = asyncio.ensure_future(anext(source))
                await asyncio.wait([taken, failed], return_when=asyncio.FIRST_COMPLETED)
                if failed.done():
                    taken.cancel()
                    failed.result()  # raises
                try:
                    events = taken.result()
                except StopAsyncIteration:  # the source ended (the worker is stopping)
                    return
                if self.before_batch is not None:
                    await self.before_batch(events)
                while tasks and (tasks[0].done() or len(tasks) >= self.in_flight):
                    await tasks.popleft()  # raises if that batch failed
                task = asyncio.ensure_future(handle(events, tasks[-1] if tasks else None))
                task.add_done_callback(watch)
                tasks.append(task)
        finally:
            # stopping never waits for unacked batches: they are consumed again by the next worker
            for task in tasks:
                task.cancel()
            # cancelled while waiting for the next batch (the worker stopping): the pending take would
            # otherwise end later with StopAsyncIteration that nobody retrieves (an ERROR in the log)
            if taken is not None and not taken.done():
                taken.cancel()
            elif taken is not None and not taken.cancelled():
                taken.exception()
            if failed.done() and not failed.cancelled():
                failed.exception()  # retrieved: no "exception was never retrieved" at shutdown
