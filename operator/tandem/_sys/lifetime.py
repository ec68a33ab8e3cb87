"""Tying a process's lifetime to another's (Linux ``prctl``).

- The parent-death signal: the kernel SIGKILLs a child when the process that started it dies,
  so a SIGKILLed launcher, executor or test leaves nothing running. It survives ``exec``.
- The child subreaper: orphans of our descendants are re-parented to us instead of to init,
  so torchrun's and Ray's grandchildren can still be found below us and stopped.

Both are no-ops (returning False) where ``prctl`` is not available.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from typing import Optional

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36

_libc: Optional[ctypes.CDLL]
try:  # loaded at import, before any fork, so a preexec_fn never has to dlopen in a forked child
    _libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
except OSError:  # pragma: no cover - no C library to load
    _libc = None


def _prctl(option: int, value: int) -> bool:
    if _libc is None:
        return False
    try:
        return bool(_libc.prctl(option, value, 0, 0, 0) == 0)
    except AttributeError:  # pragma: no cover - a libc without prctl
        return False


def set_parent_death_signal(sig: int = signal.SIGKILL) -> bool:
    """Ask the kernel to send ``sig`` to this process when its parent dies. False if unsupported."""
    return _prctl(PR_SET_PDEATHSIG, int(sig))


def die_with_parent(parent: Optional[int] = None) -> bool:
    """Be SIGKILLed when the parent dies (usable as a ``preexec_fn``).

    The parent may already have died between fork and this call, in which case no signal will
    ever come: given the expected `parent` pid, returns False when it is no longer the parent,
    so the caller can exit instead of running orphaned.
    """
    set_parent_death_signal(signal.SIGKILL)
    return parent is None or os.getppid() == parent


def become_subreaper() -> bool:
    """Orphaned descendants are re-parented to this process, so they can still be found."""
    return _prctl(PR_SET_CHILD_SUBREAPER, 1)
