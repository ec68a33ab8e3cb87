"""The operator's work queue, on a real event loop: one worker per key at a time, events that
arrive mid-reconcile folded into one more pass, and delayed requeues where the earliest wins."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Hashable
from typing import TypeVar

from tandem.controller.queue import WorkQueue

T = TypeVar("T")
#: Timers may fire up to the event loop's clock resolution early.
EARLY = 0.005


def run(scenario: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(asyncio.wait_for(scenario(), timeout=10))


async def settle(queue: WorkQueue, workers: list[asyncio.Task], rounds: int = 20) -> None:
    """Let the workers drain the queue, then stop them."""
    for _ in range(rounds):
        await asyncio.sleep(0)
    while len(queue):
        await asyncio.sleep(0.001)
    for _ in range(rounds):
        await asyncio.sleep(0)
    for worker in workers:
        worker.cancel()
    await asyncio.gather(*workers, return_exceptions=True)


def start(queue: WorkQueue, handle: Callable[[Hashable], Awaitable[None]], count: int = 1) -> list[asyncio.Task]:
    return [asyncio.create_task(queue.run_worker(handle)) for _ in range(count)]


def test_a_key_added_many_times_while_queued_is_reconciled_once():
    async def scenario() -> list[Hashable]:
        queue, seen = WorkQueue(), []

        async def handle(key: Hashable) -> None:
            seen.append(key)

        for _ in range(5):
            queue.add("a")
        queue.add("b")
        queue.add("a")
        assert len(queue) == 2
        await settle(queue, start(queue, handle))
        return seen

    assert run(scenario) == ["a", "b"]


def test_keys_are_handled_in_the_order_they_were_added():
    async def scenario() -> list[Hashable]:
        queue, seen = WorkQueue(), []

        async def handle(key: Hashable) -> None:
            seen.append(key)

        for key in ["c", "a", "b", "a", "c"]:
            queue.add(key)
        await settle(queue, start(queue, handle))
        return seen

    assert run(scenario) == ["c", "a", "b"]


def test_an_event_during_a_reconcile_means_exactly_one_more_pass_never_a_concurrent_one():
    async def scenario() -> tuple[list[str], int]:
        queue, log = WorkQueue(), []
        running: set[Hashable] = set()
        most = 0
        release = asyncio.Event()

        async def handle(key: Hashable) -> None:
            nonlocal most
            assert key not in running, "two workers reconciled one key at once"
            running.add(key)
            most = max(most, len(running))
            log.append(f"start {key}")
            if len(log) == 1:
                await release.wait()
            running.discard(key)
            log.append(f"end {key}")

        workers = start(queue, handle, count=4)
        queue.add("a")
        await asyncio.sleep(0.01)  # the first pass of "a" is now blocked inside handle
        for _ in range(3):
            queue.add("a")  # folded into one more pass, not handed to the idle workers
        queue.add("b")
        await asyncio.sleep(0.01)
        assert log == ["start a", "start b", "end b"]
        release.set()
        await settle(queue, workers)
        return log, most

    log, most = run(scenario)
    assert log == ["start a", "start b", "end b", "end a", "start a", "end a"]
    assert most == 2  # different keys do run side by side


def test_a_failing_handler_still_releases_its_key():
    async def scenario() -> list[Hashable]:
        queue, seen = WorkQueue(), []

        async def handle(key: Hashable) -> None:
            seen.append(key)
            if len(seen) == 1:
                queue.add(key)  # an event mid-reconcile...
                raise RuntimeError("boom")  # ...and the reconcile fails

        worker = start(queue, handle)
        queue.add("a")
        await asyncio.sleep(0.01)
        # The worker task died with the error (the runtime's reconcile_key catches everything,
        # so there it never does); the key was released and its dirty pass queued again.
        assert worker[0].done() and isinstance(worker[0].exception(), RuntimeError)
        assert len(queue) == 1
        await settle(queue, start(queue, handle))
        return seen

    assert run(scenario) == ["a", "a"]


def test_add_after_waits_for_its_delay():
    async def scenario() -> float:
        queue, handled = WorkQueue(), asyncio.Event()
        loop = asyncio.get_running_loop()
        when = 0.0

        async def handle(key: Hashable) -> None:
            nonlocal when
            when = loop.time()
            handled.set()

        workers = start(queue, handle)
        began = loop.time()
        queue.add_after("a", 0.05)
        assert len(queue) == 0  # a timer, not yet queued
        await handled.wait()
        await settle(queue, workers)
        return when - began

    assert run(scenario) >= 0.05 - EARLY


def test_the_earliest_requeue_wins_whatever_the_order():
    async def scenario(first: float, second: float) -> tuple[float, int]:
        queue, loop = WorkQueue(), asyncio.get_running_loop()
        times: list[float] = []

        async def handle(key: Hashable) -> None:
            times.append(loop.time())

        workers = start(queue, handle)
        began = loop.time()
        queue.add_after("a", first)
        queue.add_after("a", second)
        await asyncio.sleep(0.3)
        await settle(queue, workers)
        return times[0] - began, len(times)

    for first, second in [(0.05, 5.0), (5.0, 0.05)]:
        elapsed, passes = run(functools.partial(scenario, first, second))
        assert 0.05 - EARLY <= elapsed < 1.0 and passes == 1  # the later timer was dropped


def test_a_requeue_of_a_key_already_queued_adds_no_pass():
    async def scenario() -> list[Hashable]:
        queue, seen = WorkQueue(), []

        async def handle(key: Hashable) -> None:
            seen.append(key)
            await asyncio.sleep(0.05)

        queue.add("a")
        queue.add_after("a", 0.01)  # fires while "a" is still waiting in the queue
        await asyncio.sleep(0.03)
        assert len(queue) == 1
        await settle(queue, start(queue, handle))
        return seen

    assert run(scenario) == ["a"]


# progress: what /healthz reads to tell a wedged queue from a busy or an idle one


class Clock:
    """A clock the test moves by hand: the queue's waits are then exact, and take no time."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_idle_queue_is_never_wedged_however_long_it_idles():
    async def scenario() -> str:
        clock = Clock()
        queue = WorkQueue(clock=clock)
        clock.now += 10_000
        progress = queue.progress()
        assert (progress.waiting, progress.oldest_wait_since) == (0, None)
        return progress.stalled(bound=60)

    assert run(scenario) == ""


def test_keys_waiting_behind_workers_that_never_finish_are_a_wedged_queue():
    async def scenario() -> tuple[str, str]:
        clock, hang = Clock(), asyncio.Event()
        queue = WorkQueue(clock=clock)

        async def handle(key: Hashable) -> None:
            await hang.wait()  # a handler that never returns, as one stuck on a call without timeout

        workers = start(queue, handle, count=2)
        for key in ("a", "b", "c"):
            queue.add(key)
        for _ in range(5):
            await asyncio.sleep(0)  # both workers take a key and hang; "c" waits
        clock.now += 30
        early = queue.progress().stalled(bound=60)
        clock.now += 31
        late = queue.progress().stalled(bound=60)
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        return early, late

    early, late = run(scenario)
    assert early == ""
    assert late.startswith("work queue wedged: 1 key(s) waiting, the oldest for 61 s"), late


def test_an_event_for_a_key_stuck_in_its_handler_counts_as_waiting():
    async def scenario() -> str:
        clock, hang = Clock(), asyncio.Event()
        queue = WorkQueue(clock=clock)

        async def handle(key: Hashable) -> None:
            await hang.wait()

        workers = start(queue, handle, count=4)
        queue.add("a")
        await asyncio.sleep(0)
        queue.add("a")  # folded into one more pass, which can never come
        clock.now += 61
        stalled = queue.progress().stalled(bound=60)
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        return stalled

    assert "1 key(s) waiting" in run(scenario)


def test_a_backlog_that_keeps_draining_is_busy_not_wedged():
    async def scenario() -> tuple[str, int]:
        clock = Clock()
        queue = WorkQueue(clock=clock)

        async def handle(key: Hashable) -> None:
            clock.now += 10  # each pass is slow, but passes end
            await asyncio.sleep(0)

        for key in range(20):
            queue.add(key)
        workers = start(queue, handle)
        while clock.now < 1100:
            await asyncio.sleep(0)
        progress = queue.progress()
        await settle(queue, workers)
        assert progress.oldest_wait_since is not None and progress.at - progress.oldest_wait_since >= 100
        return progress.stalled(bound=60), progress.waiting

    stalled, waiting = run(scenario)
    assert waiting > 0 and stalled == ""
