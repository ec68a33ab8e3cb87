"""Reading local runs back: `.tandem/runs/<job>/<run>/logs/attempt-<n>/worker-<i>.log`, and the
run's figures in `<run>/metrics.jsonl`."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from .._sys.proctree import alive

_WORKER_LOG = re.compile(r"worker-(\d+)\.log$")
#: A run directory's marker while its `tandem run` lives: that process's pid.
ACTIVE_MARKER = ".active"


def runs_of(run_root: Path, job: str) -> list[Path]:
    """The run directories of `job`, oldest first (their names are timestamps)."""
    return sorted(p for p in (run_root / job).glob("*") if p.is_dir()) if (run_root / job).exists() else []


def latest_attempt(run_root: Path, job: str) -> Optional[Path]:
    """The newest attempt of the newest run of `job`, or None if it never ran here."""
    for run in reversed(runs_of(run_root, job)):
        attempt = latest_attempt_of(run)
        if attempt is not None:
            return attempt
    return None


def latest_attempt_of(run: Path) -> Optional[Path]:
    """The newest attempt of one run, or None before its first."""
    attempts = sorted((run / "logs").glob("attempt-*"), key=lambda p: int(p.name.split("-")[1]))
    return attempts[-1] if attempts else None


def run_is_active(attempt: Path) -> bool:
    """True while the `tandem run` that writes this attempt is alive."""
    return run_dir_is_active(attempt.parent.parent)


def run_dir_is_active(run_dir: Path) -> bool:
    """True while the `tandem run` of this run directory is alive (its `.active` marker names it)."""
    marker = run_dir / ACTIVE_MARKER
    try:
        pid = int(marker.read_text())
    except (OSError, ValueError):
        return False
    return alive(pid)


def worker_logs(attempt: Path, worker: Optional[int] = None) -> list[tuple[int, Path]]:
    found = []
    for path in attempt.glob("worker-*.log"):
        match = _WORKER_LOG.search(path.name)
        if match and (worker is None or int(match.group(1)) == worker):
            found.append((int(match.group(1)), path))
    return sorted(found)


def read_lines(logs: list[tuple[int, Path]], follow: bool = False, poll: float = 0.2,
               keep_going: Callable[[], bool] = lambda: True) -> Iterator[tuple[int, str]]:
    """(worker, line): whole files one after another, or, with follow, new lines as they come."""
    handles = {index: path.open("r", encoding="utf-8", errors="replace") for index, path in logs}
    try:
        if not follow:
            for index, handle in handles.items():
                for line in handle:
                    yield index, line.rstrip("\n")
            return
        while True:
            quiet = True
            for index, handle in handles.items():
                for line in handle:
                    quiet = False
                    yield index, line.rstrip("\n")
            if quiet:
                if not keep_going():
                    return
                time.sleep(poll)
    finally:
        for handle in handles.values():
            handle.close()


def latest_metrics(run_root: Path, job: str) -> Optional[dict[str, Any]]:
    """The last figures the newest run of `job` recorded (a line of its metrics.jsonl, written by
    the private Ray session), or None if it recorded none."""
    runs = runs_of(run_root, job)
    history = runs[-1] / "metrics.jsonl" if runs else None
    if history is None or not history.exists():
        return None
    last = None
    for line in history.read_text(encoding="utf-8").splitlines():
        try:
            last = json.loads(line)
        except ValueError:
            continue  # a line cut short by a crash
    return last if isinstance(last, dict) else None
