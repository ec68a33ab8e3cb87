"""The jobs page, one row per job: what `tandem get` says of it, in the same words.

Pure: a row is made from the job's document (a TrainingJob as the API server stores it, or a local
run's record) and the time; every figure is formatted by the function the terminal views use
(api/status.py FIGURES, figures/progress.py, kube/table.py `age`), so the page and `tandem get`
cannot disagree about a job.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Mapping, Optional, Sequence
from urllib.parse import quote

from ..api.status import (
    FIGURES,
    MetricsHistory,
    MetricsStatus,
    ProgressStatus,
    TrainingJobStatus,
    duration,
    figure_text,
)
from ..figures.progress import done
from ..kube.table import age

Source = Literal["local", "cluster"]
#: A local run whose record still says Running but whose `tandem run` is gone (killed, or the
#: machine restarted): it ended without saying how.
STOPPED = "Stopped"
#: Phases a person filters by, in the order a job goes through them.
PHASES = ("Pending", "Running", "Restarting", "Suspended", "Succeeded", "Failed", "Invalid", STOPPED)


@dataclass(frozen=True)
class JobRef:
    """Which job: a local run (`run` is its directory's name, a timestamp) or a cluster job."""

    source: Source
    namespace: str
    name: str
    run: str = ""

    @property
    def path(self) -> str:
        """The job page's address."""
        if self.source == "local":
            return f"/jobs/local/{quote(self.name, safe='')}/{quote(self.run, safe='')}"
        return f"/jobs/cluster/{quote(self.namespace, safe='')}/{quote(self.name, safe='')}"

    @property
    def key(self) -> str:
        """A stable id for the page's live updates (an HTML id)."""
        return f"{self.source}-{self.namespace}-{self.name}-{self.run}".replace("/", "-")


@dataclass(frozen=True)
class JobDocument:
    """A job as read: its document, and for a local run whether its `tandem run` is still alive
    and its latest figures (the record holds the final ones only once the run ends)."""

    ref: JobRef
    document: Mapping[str, Any]
    alive: bool = False
    latest: Optional[MetricsStatus] = None

    @property
    def status(self) -> TrainingJobStatus:
        """The status without its history (`history`): a row never needs it, and at a thousand
        jobs validating every history would be most of the jobs page's time."""
        status = self.document.get("status") or {}
        return TrainingJobStatus.model_validate({k: v for k, v in status.items() if k != "metricsHistory"})

    @property
    def history(self) -> Optional[MetricsHistory]:
        raw = (self.document.get("status") or {}).get("metricsHistory")
        return MetricsHistory.model_validate(raw) if isinstance(raw, dict) else None

    @property
    def spec(self) -> Mapping[str, Any]:
        spec = self.document.get("spec")
        return spec if isinstance(spec, Mapping) else {}


@dataclass(frozen=True)
class JobRow:
    ref: JobRef
    phase: str
    framework: str
    workers: str
    progress: str
    eta: str
    throughput: str
    efficiency: str
    straggler: str
    #: Why no straggler is named, when none is (too little data, one worker...).
    straggler_note: str
    restarts: str
    gpu: str
    age: str
    #: The creation time (RFC 3339): newest first on the page.
    created: str


def effective_status(job: JobDocument) -> TrainingJobStatus:
    """The status the page shows: a live local run's Running record with its latest figures and
    the progress they tell (the record gets them only when the run ends)."""
    status = job.status
    if job.ref.source != "local" or status.phase != "Running" or not job.alive:
        return status
    if job.latest is not None:
        status.metrics = job.latest
        if job.latest.per_worker:
            status.progress = ProgressStatus(**done(job.latest.per_worker))
    return status


def _figure(metrics: Optional[MetricsStatus], field: str) -> str:
    figure = next(f for f in FIGURES if f.field == field)
    if metrics is None or not metrics.available:
        return "-"
    return figure_text(figure, metrics)


def workers_text(spec: Mapping[str, Any], status: TrainingJobStatus) -> str:
    """`2`, or for an elastic job `2 (1-4), world 2`: desired, the range, the world it trains with."""
    desired = status.desired_workers if status.desired_workers is not None else spec.get("workers")
    low, high = spec.get("minWorkers"), spec.get("maxWorkers")
    text = "-" if desired is None else str(desired)
    if low is not None or high is not None:
        text += f" ({low if low is not None else desired}-{high if high is not None else desired})"
    if status.world_size is not None:
        text += f", world {status.world_size}"
    return text


def gpu_text(metrics: Optional[MetricsStatus]) -> str:
    """Mean GPU use over the workers that have GPUs: `87% of 4 GPUs`; `-` without NVML figures."""
    if metrics is None:
        return "-"
    used = [w for w in metrics.per_worker if w.gpus and w.gpu_utilization is not None]
    if not used:
        return "-"
    mean = sum(w.gpu_utilization or 0.0 for w in used) / len(used)
    return f"{mean:.0f}% of {sum(w.gpus or 0 for w in used)} GPUs"


def progress_cells(progress: Optional[ProgressStatus]) -> tuple[str, str]:
    """(`step 120/400 (30%)`, `1:05`): the progress and the ETA, `-` where unknown."""
    if progress is None:
        return "-", "-"
    if progress.percent is None or progress.steps_total is None:
        step = progress.steps_done if progress.steps_done is not None else progress.last_step
        return (f"step {step}" if step else "-"), "-"
    return f"step {progress.steps_done or 0}/{progress.steps_total} ({progress.percent:.0f}%)", duration(progress.eta)


def phase_of(job: JobDocument, status: TrainingJobStatus) -> str:
    """The phase shown; a local run's Running record without its `tandem run` alive is Stopped."""
    if job.ref.source == "local" and status.phase == "Running" and not job.alive:
        return STOPPED
    return status.phase or "Pending"


def row(job: JobDocument, now: datetime) -> JobRow:
    status = effective_status(job)
    metrics = status.metrics
    available = metrics is not None and metrics.available
    progress, eta = progress_cells(status.progress)
    straggler = "-"
    note = ""
    if available and metrics is not None:
        straggler = f"worker {metrics.straggler}" if metrics.straggler is not None else "none"
        note = metrics.straggler_check or ""
    elif metrics is not None:
        note = metrics.reason or "figures unavailable"
    metadata = job.document.get("metadata") or {}
    created = str(metadata.get("creationTimestamp") or status.start_time or "")
    restarts = f"{status.restarts}" + (f" + {status.in_place_restarts} in place" if status.in_place_restarts else "")
    return JobRow(
        ref=job.ref, phase=phase_of(job, status), framework=str(job.spec.get("framework", "-")),
        workers=workers_text(job.spec, status), progress=progress, eta=eta,
        throughput=_figure(metrics, "throughput"), efficiency=_figure(metrics, "scaling_efficiency"),
        straggler=straggler, straggler_note=note, restarts=restarts, gpu=gpu_text(metrics if available else None),
        age=age(created, now) if created else "<unknown>", created=created)


def rows(jobs: Sequence[JobDocument], now: datetime, namespace: str = "", phase: str = "") -> list[JobRow]:
    """The page's rows, newest first, keeping those of `namespace` (local runs are in the
    namespace their spec names) and `phase` when given."""
    made = [row(job, now) for job in jobs]
    kept = [r for r in made if (not namespace or r.ref.namespace == namespace) and (not phase or r.phase == phase)]
    return sorted(kept, key=lambda r: r.created, reverse=True)
