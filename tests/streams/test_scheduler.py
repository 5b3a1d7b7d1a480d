"""BatchScheduler with in-memory fakes: in-flight limit, order of prepares, deliveries and acks, failures."""

from __future__ import annotations

import asyncio
import gc

import pytest

from streams.scheduler import BatchScheduler


class Source:
    """Batches on demand: the test releases them one by one; the source then waits (a live stream)."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[list[int] | None] = asyncio.Queue()

    def __aiter__(self):
        return self

    async def __anext__(self) -> list[int]:
        batch = await self.queue.get()
        if batch is None:
            raise StopAsyncIteration
        return batch


class Handler:
    """Records the order of events; each delivery waits until the test opens its gate."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.log: list[str] = []
        self.gates: dict[int, asyncio.Event] = {}
        self.delivering: dict[int, asyncio.Event] = {}
        self.fail_on = fail_on

    def gate(self, batch: int) -> asyncio.Event:
        return self.gates.setdefault(batch, asyncio.Event())

    def started(self, batch: int) -> asyncio.Event:
        return self.delivering.setdefault(batch, asyncio.Event())

    async def prepare(self, events: list[int]) -> int:
        self.log.append(f"prepare {events[0]}")
        return events[0]

    async def deliver(self, batch: int) -> None:
        self.log.append(f"deliver {batch}")
        self.started(batch).set()
        await self.gate(batch).wait()
        if batch == self.fail_on:
            raise RuntimeError(f"sink refused batch {batch}")


def scheduler(handler: Handler, acked: list[int], in_flight: int, all_acked: asyncio.Event | None = None,
              expected: int = 0) -> BatchScheduler[int]:
    async def ack(events: list[int]) -> None:
        acked.extend(events)
        if all_acked is not None and len(acked) == expected:
            all_acked.set()

    return BatchScheduler(handler, ack, in_flight=in_flight)


def test_deliveries_and_acks_follow_offset_order_even_when_a_later_batch_is_ready_first() -> None:
    async def go() -> None:
        handler, acked, done, source = Handler(), [], asyncio.Event(), Source()
        run = asyncio.ensure_future(scheduler(handler, acked, 2, done, expected=4).run(source))
        for b in (0, 2):
            source.queue.put_nowait([b, b + 1])
        await handler.started(0).wait()
        handler.gate(2).set()  # batch 2 may finish at once, but must wait for batch 0
        await asyncio.sleep(0)
        assert acked == [] and "deliver 2" not in handler.log
        handler.gate(0).set()
        await done.wait()
        assert acked == [0, 1, 2, 3]
        assert handler.log == ["prepare 0", "deliver 0", "prepare 2", "deliver 2"]
        source.queue.put_nowait(None)
        await run

    asyncio.run(go())


def test_no_more_than_in_flight_batches_are_taken_at_once() -> None:
    async def go() -> None:
        handler, acked, source = Handler(), [], Source()
        run = asyncio.ensure_future(scheduler(handler, acked, 2).run(source))
        for b in range(4):
            source.queue.put_nowait([b])
        await handler.started(0).wait()
        for _ in range(10):  # let the loop take whatever it is allowed to
            await asyncio.sleep(0)
        # batches 0 and 1 are in flight, batch 2 is taken but waits for a free slot, 3 is not taken
        assert handler.log == ["prepare 0", "deliver 0", "prepare 1"] and source.queue.qsize() == 1
        handler.gate(0).set()
        await handler.started(1).wait()
        for b in range(1, 4):
            handler.gate(b).set()
        while len(acked) < 4:
            await asyncio.sleep(0)
        assert acked == [0, 1, 2, 3]
        source.queue.put_nowait(None)
        await run

    asyncio.run(go())


def test_a_failed_batch_stops_the_loop_at_once_and_nothing_after_it_is_acked() -> None:
    async def go() -> None:
        handler, acked, source = Handler(fail_on=0), [], Source()
        run = asyncio.ensure_future(scheduler(handler, acked, 2).run(source))
        source.queue.put_nowait([0])
        source.queue.put_nowait([1])
        await handler.started(0).wait()
        handler.gate(1).set()
        handler.gate(0).set()  # fails; no further batch arrives, yet run() must raise now
        with pytest.raises(RuntimeError, match="sink refused batch 0"):
            await run
        assert acked == []

    asyncio.run(go())


def test_when_the_source_ends_unfinished_batches_are_dropped_unacked() -> None:
    async def go() -> None:
        handler, acked, source = Handler(), [], Source()
        run = asyncio.ensure_future(scheduler(handler, acked, 2).run(source))
        source.queue.put_nowait([0])
        await handler.started(0).wait()
        source.queue.put_nowait(None)  # the worker stops while batch 0 is being written
        await run
        assert acked == []

    asyncio.run(go())


def test_a_worker_stopped_while_waiting_for_a_batch_leaves_no_unretrieved_exception() -> None:
    """Regression (issue 15): the pending take ended with StopAsyncIteration after the agent was
    cancelled, and asyncio logged "[ERROR] Task exception was never retrieved" at every shutdown."""
    async def go() -> list[str]:
        complaints: list[str] = []
        asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: complaints.append(ctx["message"]))
        handler, acked, source = Handler(), [], Source()
        handler.gate(0).set()
        all_acked = asyncio.Event()
        run = asyncio.ensure_future(scheduler(handler, acked, 2, all_acked, expected=1).run(source))
        source.queue.put_nowait([0])
        await all_acked.wait()  # now waiting for the next batch
        run.cancel()  # Faust cancels the agent when the worker stops
        with pytest.raises(asyncio.CancelledError):
            await run
        source.queue.put_nowait(None)  # the stream then ends
        for _ in range(3):
            await asyncio.sleep(0)
        gc.collect()  # "never retrieved" is reported when the task is collected
        return complaints

    assert [m for m in asyncio.run(go()) if "never retrieved" in m] == []


def test_in_flight_must_be_positive() -> None:
    with pytest.raises(ValueError, match="PRODCAT_BATCHES_IN_FLIGHT"):
        BatchScheduler(Handler(), lambda events: None, in_flight=0)
