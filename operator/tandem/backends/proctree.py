"""Process-tree control on Linux: no worker, and no child of a worker, outlives a run.

torchrun and TensorFlow start processes of their own, sometimes in new sessions, so signalling a
process group is not enough. The executor makes itself a child subreaper (orphans of its
descendants are re-parented to it rather than to init) and walks /proc to find every
descendant when it must stop them.
"""

from __future__ import annotations

import ctypes
import os
import signal
import time
from pathlib import Path

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36


def _prctl(option: int, value: int) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def become_subreaper() -> bool:
    """Orphaned descendants are re-parented to this process, so they can still be found."""
    return _prctl(PR_SET_CHILD_SUBREAPER, 1)


def die_with_parent() -> None:
    """For preexec_fn: the child is SIGKILLed when the process that started it dies."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _parents() -> dict[int, int]:
    table: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses; fields resume after the last ')'.
        fields = stat[stat.rindex(")") + 2:].split()
        table[int(entry.name)] = int(fields[1])
    return table


def descendants(pid: int) -> list[int]:
    """Every live process below `pid`, parents before children."""
    children: dict[int, list[int]] = {}
    for child, parent in _parents().items():
        children.setdefault(parent, []).append(child)
    found, queue = [], list(children.get(pid, []))
    while queue:
        current = queue.pop(0)
        found.append(current)
        queue.extend(children.get(current, []))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rindex(")") + 2] != "Z"


def signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def stop_trees(roots: list[int], grace: float = 3.0) -> None:
    """SIGTERM every root and everything below them, then SIGKILL what is left after `grace` s.

    Descendants are listed again while waiting, since a dying parent may still be spawning.
    """
    def everything() -> list[int]:
        return [p for p in {*roots, *(d for r in roots for d in descendants(r))} if alive(p)]

    signal_all(everything(), signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not everything():
            return
        time.sleep(0.05)
    signal_all(everything(), signal.SIGKILL)


def reap_orphans(own: set[int]) -> None:
    """Collect re-parented orphans (not the `own` children, whose codes Popen must read)."""
    me = os.getpid()
    for pid, parent in _parents().items():
        if parent == me and pid not in own:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


def carrying_env(pids: list[int], name: str, value: str) -> list[int]:
    """The processes among `pids` whose environment holds name=value (inherited by default)."""
    needle = f"{name}={value}".encode()
    found = []
    for pid in pids:
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            found.append(pid)
    return found
