"""Process trees from /proc (Linux): no worker, and no child of a worker, outlives a run.

torchrun and TensorFlow start processes of their own, sometimes in new sessions, so signalling a
process group is not enough. The executor makes itself a child subreaper (`lifetime`: orphans
of its descendants are re-parented to it rather than to init) and walks /proc to find every
descendant when it must stop them. Processes are also found by an environment variable they
inherited (TANDEM_RUN_ID, TANDEM_JOB, Ray's session id), which no renaming of a process hides.

Every reader treats a process that vanishes while being read as absent: /proc changes under us.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Iterable, Iterator, Optional

PROC = Path("/proc")


def _pids() -> list[int]:
    return [int(entry.name) for entry in PROC.iterdir() if entry.name.isdigit()]


def _stat_fields(pid: int) -> Optional[list[str]]:
    """The fields of /proc/<pid>/stat after the command name (state first), or None if gone."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses; fields resume after the last ')'.
    return stat[stat.rindex(")") + 2:].split()


def cpu_seconds(pid: int) -> Optional[float]:
    """CPU time (utime + stime) of a process and of its waited-for children, or None if gone."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def parents() -> dict[int, int]:
    """pid -> parent pid, for every process now."""
    table: dict[int, int] = {}
    for pid in _pids():
        fields = _stat_fields(pid)
        if fields is not None:
            table[pid] = int(fields[1])
    return table


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (zombies included), parents before children."""
    children: dict[int, list[int]] = {}
    for child, parent in parents().items():
        children.setdefault(parent, []).append(child)
    found, queue = [], list(children.get(pid, []))
    while queue:
        current = queue.pop(0)
        found.append(current)
        queue.extend(children.get(current, []))
    return found


def start_time(pid: int) -> Optional[int]:
    """When `pid` started (clock ticks since boot, /proc/<pid>/stat field 22), or None if gone.

    A pid and its start time name one process for good: a pid alone may have been reused by an
    unrelated process since it was recorded."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields is not None and len(fields) > 19 else None


def alive(pid: int) -> bool:
    """Whether `pid` runs: it exists and is not a zombie (dead, waiting to be reaped)."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z"


def cmdline(pid: int) -> list[bytes]:
    """The process's argv as bytes; [] if it is gone or unreadable."""
    try:
        return (PROC / str(pid) / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return []


def environ(pid: int) -> list[bytes]:
    """The process's environment as ``NAME=value`` bytes; [] if it is gone or unreadable."""
    try:
        return (PROC / str(pid) / "environ").read_bytes().split(b"\0")
    except OSError:
        return []


def carrying_env(pids: Iterable[int], name: str, value: str) -> list[int]:
    """The processes among `pids` whose environment holds name=value (inherited by default)."""
    needle = f"{name}={value}".encode()
    return [pid for pid in pids if needle in environ(pid)]


def live_with_env(name: str, value: str, prefix: bool = False) -> list[int]:
    """Every live process but this one whose environment holds name=value (or, with `prefix`,
    a value starting with `value`)."""
    needle = f"{name}={value}".encode()
    me = os.getpid()

    def matches(variables: list[bytes]) -> bool:
        return any(v.startswith(needle) for v in variables) if prefix else needle in variables

    return [pid for pid in _pids() if pid != me and matches(environ(pid)) and alive(pid)]


def signal_all(pids: Iterable[int], sig: int) -> None:
    """Send `sig` to each pid, skipping those already gone or not ours."""
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
    for pid, parent in parents().items():
        if parent == me and pid not in own:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


def exited_children() -> Iterator[tuple[int, int]]:
    """(pid, wait status) of each exited child of ours, collected now, until none is left exited."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        yield pid, status


def reap_children() -> None:
    """Collect every exited child of ours (for a subreaper whose children are not Popen's)."""
    for _ in exited_children():
        pass

