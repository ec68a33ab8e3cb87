"""How many heaps (arenas) glibc's malloc may keep: the operator's memory at scale.

glibc gives a thread that finds the heap busy an arena of its own, up to 8 per core, and an
arena's freed memory is reused only by the threads that use that arena. The operator keeps a
pool of threads (controller/runtime.API_THREADS: the figures reads) beside the event loop and
the Lease renewal: with an arena each, the freed space of one cannot serve another, and the
resident set grows with the thread count rather than with the jobs (bench B3 measures the
operator's peak). Two arenas are what the event loop's thread and the others need; Python's
own small objects live in pymalloc's arenas regardless.
"""

from __future__ import annotations

import ctypes
import os

#: mallopt's parameter number for the arena limit (glibc's malloc.h).
M_ARENA_MAX = -8


def limit_arenas(count: int) -> bool:
    """Cap glibc's arenas at `count`; call before the process starts threads. False where it
    does not apply: MALLOC_ARENA_MAX set in the environment (that choice stands), or a C library
    without mallopt (musl, macOS)."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own C library
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_ARENA_MAX, count))
