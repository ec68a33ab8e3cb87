"""Shared by the benchmarks/ scripts: the machine and versions line, tables, RESULTS.md appends.

Imports nothing from Tandem (B1's wrappers must stay launcher-neutral); versions are read
from package metadata, so no framework is imported just to print its version.
"""

from __future__ import annotations

import datetime
import fcntl
import os
import platform
import statistics
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Iterable, Sequence

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "RESULTS.md"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "-"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0


def k8s_version() -> str:
    """The test control plane's Kubernetes version (tests/controlplane/go.mod)."""
    try:
        for line in (REPO / "tests" / "controlplane" / "go.mod").read_text().splitlines():
            if "k8s.io/kubernetes " in line:
                return line.split()[-1]
    except OSError:
        pass
    return "-"


def git_commit() -> str:
    try:
        return subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10).stdout.strip() or "-"
    except (OSError, subprocess.SubprocessError):
        return "-"


def environment_lines() -> list[str]:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return [
        f"- date: {now}; commit {git_commit()}",
        f"- machine: {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {cpu_model()}, "
        f"{memory_gib():.1f} GiB memory; no GPU (no GPU machine was lent to this task); "
        f"load average (1/5/15 min) when the section was written: {loadavg()}",
        f"- versions: python {platform.python_version()}, torch {_version('torch')}, "
        f"tensorflow {_version('tensorflow-cpu') if _version('tensorflow-cpu') != '-' else _version('tensorflow')}, "
        f"keras {_version('keras')}, ray {_version('ray')}, kubernetes {k8s_version()} (control plane), "
        f"kubernetes client {_version('kubernetes')}, tandem {_version('tandem')}",
    ]


def loadavg() -> str:
    """The machine is shared: a high load average means noisy, deflated figures."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "-"


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A GitHub Markdown table (also readable on a terminal)."""
    rows = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=False)) + " |"  # noqa: E731
    out = [line(headers), "| " + " | ".join("-" * w for w in widths) + " |"]
    out += [line(r) for r in rows]
    return "\n".join(out)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100): p99 of 100 values is the 99th smallest."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def append_results(title: str, body: str, command: str) -> None:
    """Append one section to benchmarks/RESULTS.md, under a lock (other benchmarks append too)."""
    section = "\n".join([
        "", f"## {title}", "", f"Command: `{command}`", "", *environment_lines(), "", body.rstrip(), "",
    ])
    with open(RESULTS, "a+", encoding="utf-8") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0, os.SEEK_END)
        if f.tell() == 0:
            f.write("# Benchmark results\n\nAppended by the scripts under benchmarks/; newest last. "
                    "See docs/benchmarks.md for what each measures.\n")
        f.write(section)
        fcntl.flock(f, fcntl.LOCK_UN)
    print(f"\nappended to {RESULTS.relative_to(REPO)}", file=sys.stderr)
