"""Finding a run's processes from outside: every worker and its children carry TANDEM_RUN_ID."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def processes_of_job(job: str) -> list[int]:
    """Live pids whose environment holds TANDEM_JOB=<job> (workers, torchrun, ranks)."""
    needle = f"TANDEM_JOB={job}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text()
        except OSError:
            continue
        if needle in environ.split(b"\0") and state[state.rindex(")") + 2] != "Z":
            found.append(int(entry.name))
    return found


def wait_for_processes(job: str, count: int, timeout: float = 60) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = processes_of_job(job)
        if len(pids) >= count:
            return pids
        time.sleep(0.2)
    raise AssertionError(f"fewer than {count} processes of {job} appeared in {timeout} s")


def wait_until_gone(job: str, timeout: float = 10) -> list[int]:
    """[] when every process of the job has exited within `timeout`; else the survivors."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not processes_of_job(job):
            return []
        time.sleep(0.1)
    return processes_of_job(job)


def kill_job(job: str) -> None:
    for pid in processes_of_job(job):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
