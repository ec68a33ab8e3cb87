"""A work queue in the spirit of client-go's: each key is reconciled by one worker at a time,
events for a key being reconciled are folded into one more pass, and delays are timers."""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable, Generic, Hashable, TypeVar

#: What the queue holds: the operator queues (namespace, name) keys.
KeyT = TypeVar("KeyT", bound=Hashable)


class WorkQueue(Generic[KeyT]):
    def __init__(self) -> None:
        self._queue: asyncio.Queue[KeyT] = asyncio.Queue()
        self._queued: set[KeyT] = set()
        self._active: set[KeyT] = set()
        self._dirty: set[KeyT] = set()
        self._timers: dict[KeyT, asyncio.TimerHandle] = {}

    def add(self, key: KeyT) -> None:
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
            self._active.add(key)
            try:
                await handle(key)
            finally:
                self._active.discard(key)
                if key in self._dirty:
                    self._dirty.discard(key)
                    self.add(key)
