"""Polling with a deadline: the one `wait_for` of the test suite."""

from __future__ import annotations

import time
from typing import Any, Callable, TypeVar

T = TypeVar("T")


def wait_for(what: str, check: Callable[[], T], timeout: float = 60, interval: float = 0.25,
             explain: Callable[[], str] = lambda: "") -> T:
    """Call `check` until it returns something truthy and return that; after `timeout` s fail
    with `what` and the last value seen, which is usually what explains the failure, plus
    whatever `explain()` adds (e.g. `kubectl describe` of the objects waited on)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}; last value: {last!r}\n{explain()}")
        time.sleep(interval)
