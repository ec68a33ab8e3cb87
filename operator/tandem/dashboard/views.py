"""What each page shows, from what the sources read: pure, so a page's content is tested without
a server, a browser or a cluster. The templates (dashboard/templates) only lay it out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping, Optional, Sequence
from urllib.parse import quote

from ..api.status import FIGURES, MetricsStatus, WorkerMetrics, figure_text, milliseconds_text, shown
from ..metrics.gpu import gpu_text as worker_gpu_text
from . import series as charts
from .rows import PHASES, JobDocument, JobRow, effective_status, phase_of, row, rows
from .timeline import Event, events


@dataclass(frozen=True)
class SweepPoint:
    workers: int
    succeeded: bool
    throughput: str
    per_worker: str
    efficiency: str
    step_p50: str
    straggler: str


@dataclass(frozen=True)
class SweepPage:
    """A `tandem bench` sweep: throughput and efficiency at each worker count, and its plot."""

    job: str
    stamp: str
    baseline: str
    points: list[SweepPoint]
    has_plot: bool

    @property
    def path(self) -> str:
        return f"/sweeps/{quote(self.job, safe='')}/{quote(self.stamp, safe='')}"

    @property
    def summary(self) -> str:
        """One line for the jobs page: `1, 2, 4 workers: 1,234.5 to 3,456.7 samples/s, 70% at 4`."""
        done = [p for p in self.points if p.succeeded]
        if not done:
            return "no point succeeded"
        last = done[-1]
        workers = ", ".join(str(p.workers) for p in self.points)
        return (f"{workers} workers: {done[0].throughput} to {last.throughput}, efficiency {last.efficiency} "
                f"at {last.workers}")


def _number(value: Any, unit: str = "", ratio: bool = False) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "-"
    return f"{value:.0%}" if ratio else f"{value:,.1f} {unit}".strip()


def sweep_page(job: str, stamp: str, data: Mapping[str, Any], has_plot: bool) -> SweepPage:
    points = []
    for raw in data.get("points") or []:
        if not isinstance(raw, Mapping):
            continue
        straggler = raw.get("straggler")
        step = raw.get("step_p50")
        points.append(SweepPoint(
            int(raw.get("workers") or 0), bool(raw.get("succeeded")), _number(raw.get("throughput"), "samples/s"),
            _number(raw.get("per_worker"), "samples/s"), _number(raw.get("efficiency"), ratio=True),
            milliseconds_text(step) if isinstance(step, (int, float)) else "-",
            "-" if straggler is None else f"worker {straggler}"))
    baseline = data.get("baseline")
    source = data.get("baselineSource") or ""
    text = f"{_number(baseline, 'samples/s per worker')} ({source})" if isinstance(baseline, (int, float)) else "none"
    return SweepPage(job, stamp, text, points, has_plot)


@dataclass(frozen=True)
class JobsPage:
    rows: list[JobRow]
    namespaces: list[str]
    phases: tuple[str, ...]
    namespace: str
    phase: str
    #: What was read and what could not be: `local runs in .tandem/runs`, `cluster: namespace team-a`.
    sources: list[str]
    problems: list[str]
    sweeps: list[SweepPage]


def jobs_page(jobs: Sequence[JobDocument], now: datetime, namespace: str = "", phase: str = "",
              sources: Sequence[str] = (), problems: Sequence[str] = (),
              sweeps: Sequence[SweepPage] = ()) -> JobsPage:
    namespaces = sorted({job.ref.namespace for job in jobs if job.ref.namespace})
    return JobsPage(rows(jobs, now, namespace, phase), namespaces, PHASES, namespace, phase, list(sources),
                    list(problems), list(sweeps))


@dataclass(frozen=True)
class WorkerFigures:
    """One worker's line in the job page's table."""

    index: int
    cells: list[str]
    gpu: str
    straggler: bool


@dataclass(frozen=True)
class JobPage:
    row: JobRow
    phase: str
    live: bool
    #: The job's figures as `tandem get` lists them: (label, value).
    figures: list[tuple[str, str]]
    worker_headers: list[str]
    workers: list[WorkerFigures]
    events: list[Event]
    chart_lines: list[charts.LineSummary]
    points: int
    logs: dict[int, list[str]]
    tensorboard: Optional[str]
    reason: str


def _worker_figures(metrics: Optional[MetricsStatus]) -> tuple[list[str], list[WorkerFigures]]:
    declared = [f for f in FIGURES if f.per_worker and "run" in f.views]
    headers = ["steps", *(f.label for f in declared)]
    if metrics is None or not metrics.available:
        return headers, []
    made = []
    for worker in sorted(metrics.per_worker, key=lambda w: w.index):
        cells = [str(worker.steps), *(f.shown(f.of(worker)) for f in declared)]
        made.append(WorkerFigures(worker.index, cells, _gpu(worker), metrics.straggler == worker.index))
    return headers, made


def _gpu(worker: WorkerMetrics) -> str:
    if not worker.gpus:
        return "-"
    return f"{worker.gpus} x {worker_gpu_text(worker.gpu_utilization, worker.gpu_memory_used, worker.gpu_memory_total)}"


def job_page(job: JobDocument, now: datetime, drawn: charts.Series, logs: dict[int, list[str]]) -> JobPage:
    status = effective_status(job)
    phase = phase_of(job, status)
    metrics = status.metrics
    figures = [(f.label, figure_text(f, metrics)) for f, _ in shown(metrics, "get")] if metrics and metrics.available else []
    headers, workers = _worker_figures(metrics)
    live = phase in ("Pending", "Running", "Restarting") and (job.ref.source == "cluster" or job.alive)
    reason = "" if metrics is None or metrics.available else (metrics.reason or "figures unavailable")
    return JobPage(row(job, now), phase, live, figures, headers, workers, events(status, phase),
                   charts.summary(drawn), len(drawn.t), logs, status.tensorboard, reason)
