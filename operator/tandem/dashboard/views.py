"""What each page shows, from what the sources read: pure, so a page's content is tested without
a server, a browser or a cluster. The templates (dashboard/templates) only lay it out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Optional, Sequence

from ..api.status import FIGURES, MetricsStatus, WorkerMetrics, figure_text, shown
from ..metrics.gpu import gpu_text as worker_gpu_text
from . import series as charts
from .rows import PHASES, JobDocument, JobRow, effective_status, phase_of, row, rows
from .timeline import Event, events


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


def jobs_page(jobs: Sequence[JobDocument], now: datetime, namespace: str = "", phase: str = "",
              sources: Sequence[str] = (), problems: Sequence[str] = ()) -> JobsPage:
    namespaces = sorted({job.ref.namespace for job in jobs if job.ref.namespace})
    return JobsPage(rows(jobs, now, namespace, phase), namespaces, PHASES, namespace, phase, list(sources),
                    list(problems))


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
