"""The TrainingJob status: what the operator observes and the CLI shows.

The status is written by Tandem only, so the model is permissive on read (unknown fields are
kept) and its schema in the CRD describes each field for `kubectl explain`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from ..contract import CONDITION_TYPES, PHASES, RECOVERY_LINE, Phase

#: Status timestamps, as Kubernetes writes them (RFC 3339, UTC, whole seconds).
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def rfc3339(moment: datetime) -> str:
    """A status timestamp; RFC 3339 in UTC sorts as time does."""
    return moment.astimezone(timezone.utc).strftime(TIME_FORMAT)


def duration(seconds: Optional[int]) -> str:
    """`1:05`, `2:03:04`: a count of seconds (status.progress's eta and elapsed) as a person reads it."""
    if seconds is None:
        return "-"
    minutes, second = divmod(int(seconds), 60)
    hours, minute = divmod(minutes, 60)
    return f"{hours}:{minute:02d}:{second:02d}" if hours else f"{minute}:{second:02d}"


def parse_time(text: Optional[str]) -> Optional[datetime]:
    """A status timestamp read back (None when unset)."""
    if not text:
        return None
    return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=timezone.utc)


class _Status(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")


class Condition(_Status):
    """A Kubernetes-convention condition (type, status, reason, message, lastTransitionTime)."""

    type: str = Field(description=f"Condition type: {', '.join(CONDITION_TYPES)}.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field("", description="One-word CamelCase reason for the last transition.")
    message: str = Field("", description="Human-readable detail, e.g. the failing worker and its exit code.")
    last_transition_time: Optional[str] = Field(None, description="When the status last changed (RFC 3339).")
    observed_generation: Optional[int] = Field(None, description="The .metadata.generation the condition was set for.")


class WorkerCounts(_Status):
    """Worker pods of the current group, counted from the Indexed Job's pods."""

    active: int = Field(0, description="Worker pods that are pending or running.")
    ready: int = Field(0, description="Worker pods that are ready.")
    succeeded: int = Field(0, description="Worker pods that succeeded.")
    failed: int = Field(0, description="Worker pods that failed.")


#: At most this many per-worker entries reach status: the figures come from tenant code (through
#: the figures gateway), and a status object must stay far below etcd's object size limit whatever they say.
MAX_WORKER_FIGURES = 1000
#: Longest `reason` kept in status.metrics.
MAX_REASON = 1024


# Every figure below is a finite, non-negative number (ge=0, allow_inf_nan=False): a NaN or
# infinity cannot be written to the API server (its JSON has no such values), and a negative rate
# or time means nothing. The figures come from tenant code, so they are checked again here.
class WorkerMetrics(_Status):
    """Throughput of one worker over the metrics window."""

    index: int = Field(ge=0, description="Worker index.")
    throughput: float = Field(description="Samples per second of this worker.", ge=0, allow_inf_nan=False)
    step_time_p50: Optional[float] = Field(None, description="Median step time in seconds.", ge=0, allow_inf_nan=False)
    step_time_p95: Optional[float] = Field(None, description="95th-percentile step time in seconds.", ge=0, allow_inf_nan=False)
    steps: int = Field(0, ge=0, description="Steps reported so far.")
    capacity: Optional[float] = Field(
        None, description="Samples per second of compute alone (step time less the wait for peers); names the straggler.",
        ge=0, allow_inf_nan=False,
    )
    steps_done: Optional[int] = Field(
        None, ge=0, description="Steps done by the worker's current process, by its own count (restarts start again).")
    steps_total: Optional[int] = Field(None, ge=0, description="Steps the worker's training will take, when it said.")
    step_rate: Optional[float] = Field(
        None, description="Steps per second over the metrics window (recent, not since the start).", ge=0, allow_inf_nan=False)
    token_throughput: Optional[float] = Field(
        None, description="Tokens per second of this worker; unset unless its steps say how many tokens.",
        ge=0, allow_inf_nan=False)
    gpus: Optional[int] = Field(None, ge=0, description="NVIDIA GPUs the worker sees (NVML); unset without NVML or GPUs.")
    gpu_utilization: Optional[float] = Field(
        None, description="Mean GPU utilisation over the worker's GPUs, percent (NVML).", ge=0, le=100, allow_inf_nan=False)
    gpu_memory_used: Optional[int] = Field(None, ge=0, description="GPU memory in use on the worker's GPUs, bytes (NVML).")
    gpu_memory_total: Optional[int] = Field(None, ge=0, description="GPU memory of the worker's GPUs, bytes (NVML).")


class MetricsStatus(_Status):
    """Throughput and scaling efficiency: the workers' step records, read from the figures gateway and summed by Tandem."""

    available: bool = Field(
        True, description="False when the figures could not be read from the figures gateway; reason says why.")
    reason: Optional[str] = Field(
        None, max_length=MAX_REASON,
        description="Why the figures are unavailable, or which reported figures were dropped as malformed.",
    )
    throughput: Optional[float] = Field(None, description="Total samples per second of all workers.", ge=0, allow_inf_nan=False)
    token_throughput: Optional[float] = Field(
        None, description="Total tokens per second of all workers; unset unless every worker's steps say how many tokens.",
        ge=0, allow_inf_nan=False)
    per_worker: list[WorkerMetrics] = Field(
        default_factory=list, max_length=MAX_WORKER_FIGURES, description="Per-worker figures."
    )
    scaling_efficiency: Optional[float] = Field(
        None, description="throughput / (workers x one-worker throughput); 1.0 is perfect scaling.", ge=0, allow_inf_nan=False
    )
    baseline_throughput: Optional[float] = Field(
        None, description="One-worker samples/s the efficiency is measured against.", ge=0, allow_inf_nan=False
    )
    efficiency_basis: Optional[Literal["baseline", "compute-time"]] = Field(
        None, description=("What scalingEfficiency is measured against. baseline: throughput / (workers x "
                           "baselineThroughput). compute-time, when there is no one-worker throughput: throughput / "
                           "the sum of the workers' capacities, i.e. the part of the step time spent computing rather "
                           "than waiting for peers; an estimate that leaves out any slow-down of the computing "
                           "itself (shared cores, memory bandwidth), so it can only read higher than baseline's."))
    step_time_p50: Optional[float] = Field(
        None, description="Median step time over all workers, seconds.", ge=0, allow_inf_nan=False
    )
    step_time_p95: Optional[float] = Field(
        None, description="95th-percentile step time over all workers, seconds.", ge=0, allow_inf_nan=False
    )
    straggler: Optional[int] = Field(
        None, ge=0,
        description="Index of the worker whose compute capacity stays below spec.metrics.stragglerThreshold x the median "
                    "capacity of the other workers, if any.")
    straggler_check: Optional[str] = Field(
        None, max_length=MAX_REASON,
        description="Why no straggler could be judged, e.g. too little data (too few steps or seconds).")
    updated_at: Optional[str] = Field(None, description="When these figures were read (RFC 3339).")
    ingested_at: Optional[str] = Field(
        None, description="When the figures gateway last stored records of this job (RFC 3339); unset before any.")
    ingest_interrupted_at: Optional[str] = Field(
        None, description=("The latest moment the figures gateway could not store this job's records (RFC 3339): a "
                           "store that failed, or the gateway's own start. One after the previous read restarts "
                           "the hang clock (progress.clockFrom), as a failed read does."))


# --- The figures, declared once: every view draws them from here --------------------------------
#: Where a figure is shown: `tandem run`'s table at the end, per worker and for the job ("run");
#: `tandem get` ("get"); the live line of `tandem run` and of a followed cluster job ("live").
#: A figure with a `column` is also a printer column (`kubectl get tj`, `tandem list`:
#: api/columns.py), described by its field's description; TensorBoard draws the counts the step
#: record carries (figures/record.py COUNTS).
View = Literal["run", "get", "live"]


def rate_text(value: float) -> str:
    return f"{value:,.1f}"


def ratio_text(value: float) -> str:
    return f"{value:.0%}"


def milliseconds_text(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


@dataclass(frozen=True)
class Figure:
    """One figure of status.metrics and where it is shown."""

    #: The MetricsStatus field of the job's figure; with `per_worker`, WorkerMetrics' field of the same name too.
    field: str
    #: Its name in a table row or a line ("step p50").
    label: str
    #: What follows a value ("samples/s"); empty when `text` says it all.
    unit: str
    text: Callable[[float], str]
    views: frozenset[View]
    per_worker: bool = False
    #: The name of its printer column; empty: none.
    column: str = ""
    #: Its printer column shows with `kubectl get -o wide` only (priority 1).
    wide: bool = False

    def of(self, figures: Union[MetricsStatus, WorkerMetrics]) -> Optional[float]:
        value: Optional[float] = getattr(figures, self.field, None)
        return value

    def shown(self, value: Optional[float]) -> str:
        """`1,280.0 samples/s`, `95%`, `-` without a value."""
        return "-" if value is None else f"{self.text(value)} {self.unit}".strip()

    def phrase(self, value: float) -> str:
        """A value in a line: `1,280.0 samples/s` (its unit names it), else `efficiency 95%`."""
        return self.shown(value) if self.unit else f"{self.label} {self.text(value)}"


FIGURES: tuple[Figure, ...] = (
    Figure("throughput", "throughput", "samples/s", rate_text, frozenset({"run", "get", "live"}), per_worker=True,
           column="Throughput"),
    Figure("token_throughput", "token throughput", "tokens/s", rate_text, frozenset({"run", "get", "live"}),
           per_worker=True, column="Tokens/s", wide=True),
    Figure("scaling_efficiency", "efficiency", "", ratio_text, frozenset({"get", "live"}),
           column="Efficiency"),
    Figure("step_time_p50", "step p50", "", milliseconds_text, frozenset({"run", "get"}), per_worker=True),
    Figure("step_time_p95", "step p95", "", milliseconds_text, frozenset({"run", "get"}), per_worker=True),
)


def check_figures(figures: tuple[Figure, ...]) -> None:
    """Refuse, at import, a figure whose field the status does not have (a typo would show "-")."""
    for figure in figures:
        if figure.field not in MetricsStatus.model_fields:
            raise TypeError(f"figure {figure.field!r} is not a MetricsStatus field")
        if figure.per_worker and figure.field not in WorkerMetrics.model_fields:
            raise TypeError(f"figure {figure.field!r} is per worker but not a WorkerMetrics field")


check_figures(FIGURES)


#: What follows a scaling efficiency measured without a one-worker baseline, wherever it is shown.
ESTIMATED = "(est. from compute time)"


def figure_text(figure: Figure, figures: MetricsStatus) -> str:
    """A job's figure as a view shows it; an efficiency with efficiencyBasis compute-time says so."""
    text = figure.shown(figure.of(figures))
    if figure.field == "scaling_efficiency" and figures.efficiency_basis == "compute-time" and text != "-":
        text += f" {ESTIMATED}"
    return text


def shown(figures: Union[MetricsStatus, WorkerMetrics], view: View) -> list[tuple[Figure, float]]:
    """The figures `view` shows that `figures` holds a value of, in declaration order; a worker's
    figures hold only the `per_worker` ones."""
    if isinstance(figures, WorkerMetrics):
        declared = [f for f in FIGURES if f.per_worker and view in f.views]
    else:
        declared = [f for f in FIGURES if view in f.views]
    return [(f, value) for f in declared if (value := f.of(figures)) is not None]


# --- The failure a rule judged, and the steps a hang is told from (docs/failure-rules.md) ---------
class FailureStatus(_Status):
    """The last failure the failure rules judged: the worker, what it said, and the rule that decided."""

    worker: Optional[int] = Field(None, description="Index of the failed worker (for Hung: the first that went silent).")
    pod: Optional[str] = Field(None, description="Name of the failed worker's pod (Kubernetes).")
    exit_code: Optional[int] = Field(None, description="Exit code of the failed worker's container, when it exited.")
    reason: str = Field("", description="Hung, or the container's or pod's reason (Error, OOMKilled, Evicted...).")
    conditions: list[str] = Field(default_factory=list, description="The failed pod's True conditions, e.g. DisruptionTarget.")
    action: str = Field("", description="What was done: FailJob, Ignore (restart not counted) or Count.")
    rule: Optional[int] = Field(None, description="Index of the runPolicy.failurePolicy rule that matched; unset: none did.")
    rule_name: Optional[str] = Field(
        None, description="Name of the rule that matched, when it has one; with rule unset, disrupted-pod: Tandem's "
                          "built-in rule (a preempted, evicted or deleted worker's pod: Ignore).")
    restart: int = Field(0, description="The group (restart number) the failure happened in.")
    time: Optional[str] = Field(None, description="When the failure was judged (RFC 3339).")


#: How a failure was recovered: torchrun's agents restarted the training processes in place, or
#: Tandem restarted the whole group.
RECOVERED_IN_PLACE = "InPlace"
RECOVERED_GROUP_RESTART = "GroupRestart"
#: A lost worker pod was recreated for its index by the Job controller and its agent rejoined the
#: rendezvous; the other workers re-rendezvoused in place (api/rejoin.py).
RECOVERED_REJOINED = "Rejoined"
#: At most this many recoveries are kept in status (the latest): a long run's failures must not
#: grow the object without bound.
MAX_RECOVERIES = 20


class RecoveryStatus(_Status):
    """One failure and how it was recovered."""

    worker: Optional[int] = Field(None, ge=0, description="Index of the worker whose training process failed.")
    rank: Optional[int] = Field(None, ge=0, description="Global rank of the failed training process, when known.")
    exit_code: Optional[int] = Field(None, description="Exit code of the failed process (128+N: killed by signal N).")
    reason: str = Field("", description="Error, a signal's name (SIGKILL), or the failure's reason (Hung, OOMKilled...).")
    recovered: Literal["InPlace", "GroupRestart", "Rejoined"] = Field(
        description="InPlace: torchrun's agents restarted the processes, same pods and launchers (runPolicy.inPlaceRestarts); "
                    "GroupRestart: every worker was restarted (runPolicy.backoffLimit); Rejoined: the worker's lost pod "
                    "(deleted, evicted, its node lost) was recreated for its index and rejoined, the others restarted "
                    "in place.")
    seconds: Optional[float] = Field(
        None, ge=0, allow_inf_nan=False,
        description="Seconds from the failure seen to the processes started again (in place: stop, rendezvous, start; "
                    "a group restart or a rejoin: to the new pods started); unset until then.")
    pod: Optional[str] = Field(None, description="The lost pod, for a group restart or a rejoin on Kubernetes.")
    restart: int = Field(0, ge=0, description="The group (whole-group restart number) the failure happened in.")
    round: Optional[int] = Field(
        None, ge=0, description="In place: the rendezvous round the processes restarted into; one round of one "
                                "group is one in-place restart, whichever workers told it.")
    time: Optional[str] = Field(None, description="When the failure was seen (RFC 3339).")


#: One launcher's word about an in-place restart: (rendezvous round, failure time in epoch
#: seconds, record). The round is the same on every worker that restarted for one failure: it
#: tells one restart from two.
Told = tuple[int, float, RecoveryStatus]


def recovery_record(data: Any) -> Optional[Told]:
    """An in-place restart record as the launcher makes it (launch/recovery.py), read; None when
    it is not one."""
    try:
        data = dict(data)
        round_, at = int(data.pop("round")), float(data.pop("failedAt"))
        data["time"] = rfc3339(datetime.fromtimestamp(at, timezone.utc))
        data["round"] = round_
        return round_, at, RecoveryStatus.model_validate(data)
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError, OSError):
        return None


def parse_recovery(line: str) -> Optional[Told]:
    """A launcher's line about an in-place restart (contract.RECOVERY_LINE) read as recovery_record
    reads it; None for any other line."""
    start = line.find(RECOVERY_LINE)
    if start < 0:
        return None
    try:
        return recovery_record(json.loads(line[start + len(RECOVERY_LINE):]))
    except ValueError:
        return None


class WorkerProgress(_Status):
    """One worker's reported steps, as the progress deadline sees them."""

    index: int = Field(ge=0, description="Worker index.")
    steps: int = Field(0, ge=0, description="Steps the worker has reported so far.")
    at: Optional[str] = Field(None, description="When its step count was last seen to rise in this group (RFC 3339).")


class ProgressStatus(_Status):
    """The workers' steps in the current group: how far training is and when it ends (percent, eta), and what
    runPolicy.progressDeadlineSeconds and startupDeadlineSeconds judge a hang from (lastStepAt, workers)."""

    restart: int = Field(0, description="The group (restart number) these figures are of.")
    since: Optional[str] = Field(None, description="When the group's steps were first read (RFC 3339).")
    checked_at: Optional[str] = Field(None, description="When the steps were last read (RFC 3339).")
    last_step: int = Field(0, ge=0, description="The highest step count any worker has reported.")
    last_step_at: Optional[str] = Field(
        None, description="When a worker's step count last rose in this group; unset before the first step.")
    clock_from: Optional[str] = Field(
        None, description=("When the hang clock last started (RFC 3339): the group's first read, or the first read "
                           "after the figures could not be read or stored (metrics.ingestInterruptedAt) or the "
                           "collector lost its counts. The deadlines "
                           "count from it or lastStepAt, whichever is later: an outage of the figures is never "
                           "counted as silence."))
    workers: list[WorkerProgress] = Field(default_factory=list, max_length=MAX_WORKER_FIGURES, description="Per-worker steps.")
    steps_done: Optional[int] = Field(None, ge=0, description="Steps done by the furthest-behind worker.")
    steps_total: Optional[int] = Field(None, ge=0, description="Steps the training will take, when the workers said.")
    percent: Optional[float] = Field(
        None, ge=0, le=100, allow_inf_nan=False, description="stepsDone / stepsTotal, percent; unset without a total.")
    eta: Optional[int] = Field(
        None, ge=0, description=("Seconds left at checkedAt, from the recent step rate; unset when it cannot be "
                                 "known (no total, too few steps, no rate)."))
    elapsed: Optional[int] = Field(None, ge=0, description="Seconds this group (attempt) has run, from since to checkedAt.")


#: At most this many points, and lines of this many workers, in status.metricsHistory: a status
#: object must stay small whatever the job's length or size (each write sends the whole history).
MAX_HISTORY_POINTS = 120
MAX_HISTORY_WORKERS = 8


class HistoryPoint(_Status):
    """The job's figures at one read of them (a merged point: the mean of the two it replaced)."""

    t: int = Field(ge=0, description="When the figures were read (seconds since the epoch, UTC).")
    throughput: float = Field(ge=0, allow_inf_nan=False, description="Samples per second of all workers.")
    efficiency: Optional[float] = Field(None, ge=0, allow_inf_nan=False, description="Scaling efficiency, when known.")
    workers: list[float] = Field(
        default_factory=list, max_length=MAX_HISTORY_WORKERS,
        description="Samples per second of each worker of workerIndexes, in that order; 0 for one that reported no "
                    "step in the window.")


class MetricsHistory(_Status):
    """status.metrics over time, kept with the job so that its charts (tandem dashboard) outlive the job's end
    and any viewer. Bounded: when the points reach their limit, neighbours merge in pairs and points come half
    as often, so a long job keeps its whole run at a coarser grain."""

    spacing: int = Field(ge=1, description="Seconds between points at least; doubles each time the points merge.")
    worker_indexes: list[int] = Field(
        default_factory=list, max_length=MAX_HISTORY_WORKERS,
        description=f"The workers whose throughput is kept per point: the first {MAX_HISTORY_WORKERS} by index.")
    points: list[HistoryPoint] = Field(
        default_factory=list, max_length=MAX_HISTORY_POINTS,
        description=f"The figures over time, oldest first (at most {MAX_HISTORY_POINTS}).")


class TrainingJobStatus(_Status):
    """Observed state of a TrainingJob."""

    phase: Optional[Phase] = Field(None, description=f"{', '.join(PHASES[:-1])} or {PHASES[-1]}.")
    conditions: list[Condition] = Field(default_factory=list, description="Conditions, by Kubernetes conventions.")
    workers: WorkerCounts = Field(default_factory=WorkerCounts, description="Worker pod counts of the current group.")
    desired_workers: Optional[int] = Field(
        None, ge=0, description="spec.workers as last reconciled: the workers wanted (kubectl scale sets it).")
    current_workers: int = Field(
        0, ge=0, description="Worker pods running now (the scale subresource's replicas): an elastic job trains on "
                             "with fewer than desired while at least minWorkers run.")
    world_size: Optional[int] = Field(
        None, ge=0, description="Training processes in the newest rendezvous round of an elastic job, as its "
                                "launchers told the figures gateway (torch's WORLD_SIZE): what the training "
                                "really runs with, which follows a lost and a rejoined worker. Unset for a "
                                "fixed-size job, or without figures (spec.metrics.enabled false).")
    restarts: int = Field(0, description="Whole-group restarts so far.")
    in_place_restarts: int = Field(
        0, ge=0, description="Times torchrun's agents restarted the training processes in place, not counted in restarts.")
    recoveries: list[RecoveryStatus] = Field(
        default_factory=list, max_length=MAX_RECOVERIES,
        description=f"The latest failures (at most {MAX_RECOVERIES}) and how each was recovered, oldest first.")
    start_time: Optional[str] = Field(
        None, description="When the job first started (RFC 3339): the first reconcile that found it not suspended. "
                          "runPolicy.activeDeadlineSeconds counts from it, across restarts.")
    completion_time: Optional[str] = Field(None, description="When the job Succeeded or Failed (RFC 3339).")
    observed_generation: Optional[int] = Field(None, description="The .metadata.generation last reconciled.")
    metrics: Optional[MetricsStatus] = Field(None, description="Throughput, scaling efficiency and straggler.")
    metrics_history: Optional[MetricsHistory] = Field(
        None, description="Throughput and efficiency over time, bounded and downsampled (tandem dashboard's charts).")
    tensorboard: Optional[str] = Field(None, description="Address of the job's TensorBoard, when enabled.")
    ignored_restarts: int = Field(0, description="Restarts a failure rule with action Ignore did not count against backoffLimit.")
    last_failure: Optional[FailureStatus] = Field(None, description="The last failure and the failure rule that decided it.")
    progress: Optional[ProgressStatus] = Field(
        None, description="Reported steps of the current group: percent, ETA, and what a hang is judged from.")
