"""Finding a run's processes from outside: every worker and its children carry TANDEM_JOB,
and the private Ray of a `tandem run` carries TANDEM_RAY_SESSION=<job>-<run>.

Built on tandem._sys.proctree, the same /proc reading the executor stops runs with.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable, Iterable

from tandem._sys import proctree
from tandem._sys.proctree import alive, cmdline, descendants, environ
from tandem.contract import ENV_WARM_SOCKET
from tandem.launch.warm import record_path

__all__ = ["alive", "cmdline", "descendants", "environ", "kill", "kill_job", "parent", "processes_of_job", "ray_pids_listed",
           "ray_session_of", "stop_group", "tree", "wait_for_processes", "wait_gone", "wait_until_gone", "warm_child"]


def processes_of_job(job: str) -> list[int]:
    """Live pids whose environment holds TANDEM_JOB=<job> (workers, torchrun, ranks)."""
    return proctree.live_with_env("TANDEM_JOB", job)


def parent(pid: int) -> int:
    """The pid's parent now; 0 if it is gone."""
    return proctree.parents().get(pid, 0)


def warm_child(guard: int) -> int | None:
    """The training process that a worker's warm interpreter forked for the guard `guard` (after
    an in-place restart, launch/warm.py), as the server recorded it; None if there is none
    (a first start, where the guard exec'd the training process, or not forked yet). Its own
    cmdline and environ are the server's: a rank is found by its guard's."""
    prefix = f"{ENV_WARM_SOCKET}=".encode()
    sockets = [v[len(prefix):] for v in environ(guard) if v.startswith(prefix)]
    if not sockets:
        return None
    try:
        pid = int(Path(record_path(os.fsdecode(sockets[0]), guard)).read_text())
    except (OSError, ValueError):
        return None
    return pid if alive(pid) else None


def ray_pids_listed(runs: Path, job: str) -> list[int]:
    """The pids of the local Ray(s) that `tandem run` of `job` started, as their helper listed
    them in the run directory: one "pid start-time" line each (the start time is no pid)."""
    return [int(line.split()[0]) for f in (runs / job).glob("*/metrics/ray-session.pids")
            for line in f.read_text().splitlines() if line.strip()]


def ray_session_of(runs: Path, job: str) -> list[int]:
    """Live processes of the local Ray(s) that `tandem run` of `job` started, as their helper
    listed them in the run directory, plus any whose environment still names the session."""
    found = {p for p in ray_pids_listed(runs, job) if alive(p)}
    found.update(proctree.live_with_env("TANDEM_RAY_SESSION", f"{job}-", prefix=True))
    return sorted(found)


def tree(root: int) -> set[int]:
    """root and every process below it, now."""
    return {root, *descendants(root)}


def wait_for_processes(job: str, count: int, timeout: float = 60) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = processes_of_job(job)
        if len(pids) >= count:
            return pids
        time.sleep(0.2)
    raise AssertionError(f"fewer than {count} processes of {job} appeared in {timeout} s")


def wait_for_new_pid(find: Callable[[], int], old: int, what: str, timeout: float = 150) -> int:
    """The pid `find` returns once it is another than `old` (a process restarted or replaced); `find`
    raises AssertionError while there is none."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pid = find()
        except AssertionError:
            pid = old
        if pid != old:
            return pid
        time.sleep(0.3)
    raise AssertionError(f"{what} within {timeout} s")


def wait_gone(pids: Iterable[int], timeout: float = 15) -> list[int]:
    """[] when none of `pids` is alive within `timeout`; else the survivors."""
    pids = list(pids)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(alive(p) for p in pids):
            return []
        time.sleep(0.1)
    return [p for p in pids if alive(p)]


def wait_until_gone(job: str, timeout: float = 10) -> list[int]:
    """[] when every process of the job has exited within `timeout`; else the survivors."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not processes_of_job(job):
            return []
        time.sleep(0.1)
    return processes_of_job(job)


def kill(pids: Iterable[int]) -> None:
    """SIGKILL each pid that is still there."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def kill_job(job: str) -> None:
    kill(processes_of_job(job))


def stop_group(process: subprocess.Popen | None, grace: float = 15) -> None:
    """SIGTERM the process group `process` leads (started with start_new_session=True), as a
    rollout would; SIGKILL it if it is still there after `grace` seconds."""
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
