"""`tandem bench FILE --workers 1,2,4`: is adding workers worth it?

Runs the job locally once per worker count (metrics on), the one-worker run first: it records
the job's baseline, against which each run's scaling efficiency is measured. Prints a table and
writes a PNG with throughput (and the ideal, linear line) and efficiency against workers, plus
the figures as JSON next to it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Optional, Sequence

from rich.console import Console
from rich.table import Table

from ..api import load_job
from ..api.model import TrainingJob
from ..errors import UsageError


@dataclass
class Point:
    workers: int
    succeeded: bool
    throughput: Optional[float]
    per_worker: Optional[float]
    efficiency: Optional[float]
    step_p50: Optional[float]
    step_p95: Optional[float]
    straggler: Optional[int]
    wall_seconds: float
    run_dir: str


def parse_workers(text: str) -> list[int]:
    try:
        counts = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise UsageError(f"--workers wants counts like 1,2,4, not {text!r}") from None
    if not counts or counts[0] < 1:
        raise UsageError("--workers wants positive counts, e.g. 1,2,4")
    return counts


def point_overrides(workers: int) -> list[str]:
    """What makes a sweep point run exactly WORKERS workers, metrics on. An elastic spec's
    minWorkers..maxWorkers is dropped for the point: a throughput at N workers means N from start
    to end, not a world that may shrink, and a sweep may ask for counts outside the range."""
    return [f"spec.workers={workers}", "spec.minWorkers=null", "spec.maxWorkers=null", "spec.metrics.enabled=true"]


def run_point(file: str, overrides: Sequence[str], workers: int, runs_dir: Path, console: Console,
              baseline: Optional[float]) -> tuple[TrainingJob, Point]:
    from .run import run_local

    job = load_job(file, [*overrides, *point_overrides(workers)])
    quiet = Console(file=open(os.devnull, "w"), stderr=False)
    with console.status(f"{job.metadata.name}: {workers} worker{'s' * (workers > 1)} running"):
        run = run_local(job, runs_dir, quiet)
    m = run.metrics
    ok = run.result.succeeded
    throughput = m.throughput if m is not None and m.available else None
    efficiency = None
    if throughput is not None and baseline:
        efficiency = throughput / (workers * baseline)
    elif m is not None and m.available and m.efficiency_basis == "baseline":
        efficiency = m.scaling_efficiency  # a recorded baseline's; a compute-time estimate is no sweep point
    point = Point(
        workers=workers, succeeded=ok, throughput=throughput,
        per_worker=None if throughput is None else throughput / workers,
        efficiency=efficiency,
        step_p50=m.step_time_p50 if m is not None else None,
        step_p95=m.step_time_p95 if m is not None else None,
        straggler=m.straggler if m is not None else None,
        wall_seconds=sum(a.seconds for a in run.result.attempts),
        run_dir=str(run.result.run_dir),
    )
    verdict = "ok" if ok else "[red]failed[/]"
    shown = "-" if throughput is None else f"{throughput:,.1f} samples/s"
    console.print(f"{workers} worker{'s' * (workers > 1)}: {verdict}, {shown}")
    return job, point


def table(job: str, points: Sequence[Point], baseline: Optional[float], source: str) -> Table:
    caption = f"baseline {baseline:,.1f} samples/s per worker ({source})" if baseline else "no one-worker baseline"
    t = Table(title=f"{job}: throughput and scaling efficiency", title_justify="left",
              caption=caption + "; p50/p95: step time", caption_justify="left")
    for column in ("workers", "samples/s", "/worker", "eff.", "p50", "p95", "straggler", "wall"):
        t.add_column(column, justify="right", no_wrap=True)

    def num(v: Optional[float], fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    for p in points:
        t.add_row(str(p.workers), num(p.throughput, ",.1f"), num(p.per_worker, ",.1f"), num(p.efficiency, ".0%"),
                  "-" if p.step_p50 is None else f"{p.step_p50 * 1000:.1f} ms",
                  "-" if p.step_p95 is None else f"{p.step_p95 * 1000:.1f} ms",
                  "-" if p.straggler is None else f"#{p.straggler}", f"{p.wall_seconds:.0f} s",
                  style="" if p.succeeded else "red")
    return t


def plot(job: str, points: Sequence[Point], baseline: Optional[float], output: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    good = [p for p in points if p.throughput is not None]
    workers = [p.workers for p in good]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2), constrained_layout=True)
    fig.suptitle(f"{job}: is adding workers worth it?", fontsize=13, fontweight="bold")
    left.plot(workers, [p.throughput for p in good], "o-", color="tab:blue", linewidth=2, label="measured")
    if baseline:
        span = [1, max(workers or [1])]
        left.plot(span, [baseline * n for n in span], "--", color="grey", label="ideal (linear)")
    for p in good:
        left.annotate(f"{p.throughput:,.0f}", (p.workers, p.throughput), textcoords="offset points",
                      xytext=(0, 8), ha="center", fontsize=9)
    left.set_title("Throughput")
    left.set_xlabel("workers")
    left.set_ylabel("samples / s (all workers)")
    top = max([p.throughput or 0.0 for p in good] + ([baseline * max(workers)] if baseline and workers else []) + [1.0])
    left.set_ylim(0, top * 1.15)  # room for the value labels
    left.legend(loc="upper left")
    effs = [(p.workers, p.efficiency) for p in good if p.efficiency is not None]
    if effs:
        right.bar([w for w, _ in effs], [e * 100 for _, e in effs], width=0.6, color="tab:orange")
        for w, e in effs:
            right.annotate(f"{e:.0%}", (w, e * 100), textcoords="offset points", xytext=(0, 4), ha="center", fontsize=9)
    right.axhline(100, linestyle="--", color="grey", linewidth=1)
    right.set_title("Scaling efficiency")
    right.set_xlabel("workers")
    right.set_ylabel("% of linear scaling")
    right.set_ylim(0, max([110.0] + [e * 100 + 15 for _, e in effs]))
    for axis in (left, right):
        axis.set_xticks(sorted({p.workers for p in points}))
        axis.grid(True, alpha=0.3)
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=110)
    plt.close(fig)
    return output


def sweep(file: str, workers_text: str, overrides: Sequence[str], runs_dir: Path, output: Optional[Path],
          console: Console) -> int:
    from . import baseline as baselines

    counts = parse_workers(workers_text)
    probe = load_job(file, list(overrides))
    name = probe.metadata.name
    spec_baseline = probe.spec.metrics.baseline_throughput
    points: list[Point] = []
    baseline, source = baselines.choose(spec_baseline, runs_dir, name)
    for n in counts:
        _, point = run_point(file, overrides, n, runs_dir, console, baseline if n > 1 else None)
        points.append(point)
        if n == 1 and point.succeeded and point.throughput and not spec_baseline:
            baseline, source = point.throughput, "the 1-worker run of this sweep"
            point.efficiency = 1.0
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    output = output or runs_dir / name / f"bench-{stamp}.png"
    console.print(table(name, points, baseline, source))
    plot(name, points, baseline, output)
    data = {"job": name, "file": file, "overrides": list(overrides), "baseline": baseline,
            "baselineSource": source, "points": [asdict(p) for p in points]}
    output.with_suffix(".json").write_text(json.dumps(data, indent=2) + "\n")
    console.print(f"plot: {output}\nfigures: {output.with_suffix('.json')}")
    return 0 if all(p.succeeded for p in points) else 1
