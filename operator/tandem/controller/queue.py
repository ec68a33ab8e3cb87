"""A work queue in the spirit of client-go's: each key is reconciled by one worker at a time,
events for a key being reconciled are folded into one more pass, and delays are timers.

It also keeps what /healthz needs to tell a wedged queue from a busy or an idle one: since when
the oldest key has waited for a worker, and when a pass last finished (`progress()`).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, Generic, Hashable, Optional, TypeVar

#: What the queue holds: the operator queues (namespace, name) keys.
KeyT = TypeVar("KeyT", bound=Hashable)


@dataclass(frozen=True)
class Progress:
    """The queue at one moment, in time.monotonic() seconds."""

    at: float
    #: Keys waiting for a worker: queued, or changed while being reconciled.
    waiting: int
    oldest_wait_since: Optional[float]
    #: When a pass last ended (well or not), or when the queue was made.
    last_done: float

    def stalled(self, bound: float) -> str:
        """Why the queue is wedged, or "" when it is not.

        Wedged: a key has waited longer than `bound` and no pass has ended for as long. An idle
        queue is never wedged, nor a busy one that keeps finishing passes (a backlog drains); only
        workers that all stopped finishing, with work waiting, are."""
        if self.oldest_wait_since is None:
            return ""
        waited, since_done = self.at - self.oldest_wait_since, self.at - self.last_done
        if waited <= bound or since_done <= bound:
            return ""
        return (f"work queue wedged: {self.waiting} key(s) waiting, the oldest for {waited:.0f} s, "
                f"no reconcile finished for {since_done:.0f} s")


class WorkQueue(Generic[KeyT]):
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._queue: asyncio.Queue[KeyT] = asyncio.Queue()
        self._queued: set[KeyT] = set()
        self._active: set[KeyT] = set()
        self._dirty: set[KeyT] = set()
        self._timers: dict[KeyT, asyncio.TimerHandle] = {}
        self._clock = clock
        #: Keys waiting for a worker and since when; insertion order is waiting order.
        self._waiting_since: dict[KeyT, float] = {}
        self._last_done = clock()

    def progress(self) -> Progress:
        oldest = next(iter(self._waiting_since.values()), None)
        return Progress(self._clock(), len(self._waiting_since), oldest, self._last_done)

    def add(self, key: KeyT) -> None:
        self._waiting_since.setdefault(key, self._clock())
        if key in self._active:
            self._dirty.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)

    def add_after(self, key: KeyT, delay: float) -> None:
        """Reconcile again after `delay` s; an earlier timer for the key wins."""
        loop = asyncio.get_running_loop()
        timer = self._timers.get(key)
        due = loop.time() + delay
        if timer is not None and not timer.cancelled() and timer.when() <= due:
            return
        if timer is not None:
            timer.cancel()
        self._timers[key] = loop.call_at(due, self._fire, key)

    def _fire(self, key: KeyT) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def __len__(self) -> int:
        return len(self._queued)

    async def run_worker(self, handle: Callable[[KeyT], Awaitable[None]]) -> None:
        while True:
            key = await self._queue.get()
            self._queued.discard(key)
            self._waiting_since.pop(key, None)
            self._active.add(key)
            try:
                await handle(key)
            finally:
                self._last_done = self._clock()
                self._active.discard(key)
                if key in self._dirty:
                    self._dirty.discard(key)
                    self.add(key)
