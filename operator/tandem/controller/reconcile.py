"""The reconcile decision: a TrainingJob and what exists of it -> what to do. Pure.

Level-triggered: the function looks only at the object and the observed children, never at
what it did last time, so a controller killed mid-reconcile and restarted decides the same
thing again, and applying the same objects twice creates nothing twice.

The group lifecycle:
  Pending -> Running -> Succeeded
  a worker fails -> Restarting (old Job deleted, then recreated with restart+1) -> ...
  restarts == backoffLimit and a worker fails -> Failed (worker, exit code and reason named)
  suspend -> Suspended (Job deleted) -> resume -> Pending
  activeDeadlineSeconds passed -> Failed (DeadlineExceeded)
  finished and ttlSecondsAfterFinished passed -> the TrainingJob is deleted
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping, Optional

from ..api.model import TrainingJob
from ..contract import FINISHED_PHASES, METRICS_AVAILABLE, PHASES
from ..errors import SpecError
from ..render import render
from ..render.context import tensorboard_address
from .observed import Observed, PodState

#: How often status.metrics is refreshed while Running (bounded rate of status writes).
METRICS_INTERVAL_SECONDS = 15.0


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass
class Actions:
    """What the runtime must do, in this order: deletes, applies, status, events."""

    apply: list[dict[str, Any]] = field(default_factory=list)
    delete_job: bool = False
    delete_training_job: bool = False
    status: dict[str, Any] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    requeue_after: Optional[float] = None
    read_metrics: bool = False


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: Optional[str]) -> Optional[datetime]:
    if not text:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


def set_condition(conditions: list[dict[str, Any]], type_: str, status: str, reason: str, message: str,
                  now: datetime, generation: Optional[int]) -> list[dict[str, Any]]:
    """Kubernetes convention: lastTransitionTime moves only when status changes."""
    result, found = [], False
    for condition in conditions:
        if condition.get("type") == type_:
            found = True
            changed = condition.get("status") != status
            condition = {**condition, "status": status, "reason": reason, "message": message,
                         "observedGeneration": generation}
            if changed or not condition.get("lastTransitionTime"):
                condition["lastTransitionTime"] = rfc3339(now)
        result.append(condition)
    if not found:
        result.append({"type": type_, "status": status, "reason": reason, "message": message,
                       "lastTransitionTime": rfc3339(now), "observedGeneration": generation})
    return result


class _Decision:
    """Builds Actions while tracking the new status; one instance per reconcile."""

    def __init__(self, obj: Mapping[str, Any], now: datetime):
        self.now = now
        self.generation = obj.get("metadata", {}).get("generation")
        self.old_status: dict[str, Any] = dict(obj.get("status") or {})
        self.status: dict[str, Any] = dict(self.old_status)
        self.status.setdefault("restarts", 0)
        self.status["observedGeneration"] = self.generation
        self.actions = Actions()

    def phase(self, phase: str, reason: str, message: str, event_type: str = "Normal") -> None:
        """Enter `phase`: its condition True, the other lifecycle conditions False, one event."""
        previous = self.old_status.get("phase")
        conditions = list(self.status.get("conditions") or [])
        if phase != previous or not any(c.get("type") == phase for c in conditions):
            # Leaving a phase turns its condition False but keeps its reason and message: the
            # Restarting condition still says which worker failed, after the group recovered.
            for condition in conditions:
                if condition.get("type") in PHASES and condition.get("type") != phase and condition.get("status") == "True":
                    conditions = set_condition(conditions, condition["type"], "False", condition.get("reason", ""),
                                               condition.get("message", ""), self.now, self.generation)
            self.actions.events.append(Event(event_type, reason, message))
        conditions = set_condition(conditions, phase, "True", reason, message, self.now, self.generation)
        self.status["conditions"] = conditions
        self.status["phase"] = phase

    def finish(self) -> Actions:
        if self.status != self.old_status:
            self.actions.status = self.status
        return self.actions


def _worker_counts(pods: list[PodState]) -> dict[str, int]:
    return {
        "active": sum(1 for p in pods if p.phase in ("Pending", "Running")),
        "ready": sum(1 for p in pods if p.ready),
        "succeeded": sum(1 for p in pods if p.phase == "Succeeded"),
        "failed": sum(1 for p in pods if p.phase == "Failed"),
    }


def failure_message(pods: list[PodState], fallback: str) -> str:
    """Name the first failed worker by index, with its exit code and reason."""
    failed = sorted((p for p in pods if p.phase == "Failed"), key=lambda p: p.index)
    if not failed:
        return fallback
    first = failed[0]
    text = f"worker {first.index} (pod {first.name}) failed"
    if first.exit_code is not None:
        text += f" with exit code {first.exit_code}"
    if first.reason:
        text += f" ({first.reason})"
    if first.message:
        text += f": {first.message[:200]}"
    return text


def reconcile(obj: Mapping[str, Any], observed: Observed, now: datetime, metrics_address: str = "") -> Actions:
    decision = _Decision(obj, now)
    status = decision.status
    if obj.get("metadata", {}).get("deletionTimestamp"):
        return decision.finish()  # owner references let the garbage collector remove children
    try:
        job = TrainingJob.from_dict({k: v for k, v in obj.items() if k != "status"})
    except SpecError as error:
        path, message = error.problems[0]
        decision.phase("Invalid", "InvalidSpec", f"{path}: {message}", "Warning")
        return decision.finish()
    if status.get("phase") == "Invalid":
        status["conditions"] = set_condition(status.get("conditions") or [], "Invalid", "False", "SpecFixed",
                                             "the spec is valid now", now, decision.generation)
        status.pop("phase")

    if status.get("phase") in FINISHED_PHASES:
        return _after_finish(decision, job, observed)

    run_policy = job.spec.run_policy
    if run_policy.suspend:
        if observed.job is not None and not observed.job.deleting:
            decision.actions.delete_job = True
        status["workers"] = _worker_counts(observed.pods_of(status["restarts"]))
        decision.phase("Suspended", "Suspended", "runPolicy.suspend is true: workers removed")
        return decision.finish()

    restart = int(status.get("restarts", 0))
    if not status.get("startTime"):
        status["startTime"] = rfc3339(now)
    deadline = run_policy.active_deadline_seconds
    started = parse_time(status.get("startTime"))
    if deadline is not None and started is not None and now >= started + timedelta(seconds=deadline):
        if observed.job is not None and not observed.job.deleting:
            decision.actions.delete_job = True
        status["completionTime"] = rfc3339(now)
        decision.phase("Failed", "DeadlineExceeded", f"the job ran longer than activeDeadlineSeconds ({deadline})", "Warning")
        return _after_finish(decision, job, observed)

    service, job_object, *tensorboard = render(job, restart=restart, metrics_address=metrics_address)
    if not observed.service:
        decision.actions.apply.extend([service, *tensorboard])
    _tensorboard_status(decision, job)

    current = observed.job
    pods = observed.pods_of(restart)
    status["workers"] = _worker_counts(pods)
    if current is None:
        decision.actions.apply.append(job_object)
        if status.get("phase") != "Restarting":
            decision.phase("Pending", "Created", f"created {job.spec.worker_count} workers")
        decision.actions.requeue_after = 5.0
        return decision.finish()
    if current.deleting or current.restart != restart:
        # The previous group is still going away (foreground deletion); wait for it.
        if not current.deleting:
            decision.actions.delete_job = True
        decision.actions.requeue_after = 2.0
        return decision.finish()

    failed = current.failed or any(p.phase == "Failed" for p in pods)
    if failed and not any(p.phase == "Failed" for p in pods) and _recent(current.failed_since, now):
        # The Job's watch can run ahead of the pods' (and a new leader's cache may not hold the
        # pods yet): wait briefly for the failed pod, whose index and exit code the message names.
        decision.actions.requeue_after = 1.0
        return decision.finish()
    if failed:
        message = failure_message(pods, f"the Job failed ({current.failed_reason or 'unknown reason'})")
        if restart < run_policy.backoff_limit:
            status["restarts"] = restart + 1
            decision.actions.delete_job = True
            decision.phase("Restarting", "WorkerFailed",
                           f"{message}; restarting all workers ({restart + 1}/{run_policy.backoff_limit})", "Warning")
            decision.actions.requeue_after = 2.0
            return decision.finish()
        status["completionTime"] = rfc3339(now)
        decision.phase("Failed", "BackoffLimitExceeded",
                       f"{message}; backoffLimit {run_policy.backoff_limit} reached after {restart} restarts", "Warning")
        return _after_finish(decision, job, observed)

    if current.complete:
        status["completionTime"] = rfc3339(now)
        decision.phase("Succeeded", "Completed", f"all {job.spec.worker_count} workers succeeded")
        return _after_finish(decision, job, observed)

    running = sum(1 for p in pods if p.phase in ("Running", "Succeeded"))
    if running == job.spec.worker_count:
        decision.phase("Running", "AllWorkersRunning", f"{running} workers running")
        if job.spec.metrics.enabled:
            updated = parse_time((status.get("metrics") or {}).get("updatedAt"))
            due = updated is None or now - updated >= timedelta(seconds=METRICS_INTERVAL_SECONDS)
            decision.actions.read_metrics = due
            decision.actions.requeue_after = METRICS_INTERVAL_SECONDS
    elif status.get("phase") not in ("Pending", "Restarting"):
        decision.phase("Pending", "WorkersStarting", f"{running}/{job.spec.worker_count} workers running")
    if deadline is not None and started is not None:
        remaining = (started + timedelta(seconds=deadline) - now).total_seconds()
        decision.actions.requeue_after = min(decision.actions.requeue_after or remaining, max(remaining, 1.0))
    return decision.finish()


#: How long a Job failure may wait for its failed pod to appear in the cache.
POD_FAILURE_WAIT_SECONDS = 10


def _recent(timestamp: str, now: datetime) -> bool:
    moment = parse_time(timestamp) if timestamp else None
    return moment is not None and now - moment < timedelta(seconds=POD_FAILURE_WAIT_SECONDS)


def _tensorboard_status(decision: _Decision, job: TrainingJob) -> None:
    """Where the job's TensorBoard is, or why there is none."""
    board = job.spec.tensorboard
    if board.servable:
        decision.status["tensorboard"] = tensorboard_address(job)
    elif board.enabled:
        decision.status["conditions"] = set_condition(
            decision.status.get("conditions") or [], "TensorBoardServed", "False", "NoSharedLogDir",
            "workers write event files, but a TensorBoard in the cluster cannot read them: set "
            "spec.tensorboard.claimName (a ReadWriteMany PVC) or a remote spec.tensorboard.logDir (gs://, s3://)",
            decision.now, decision.generation)


def _after_finish(decision: _Decision, job: TrainingJob, observed: Observed) -> Actions:
    """Finished jobs keep their children for logs until the TTL, then go away entirely."""
    ttl = job.spec.run_policy.ttl_seconds_after_finished
    finished = parse_time(decision.status.get("completionTime"))
    if ttl is not None and finished is not None:
        remaining = (finished + timedelta(seconds=ttl) - decision.now).total_seconds()
        if remaining <= 0:
            decision.actions.delete_training_job = True
        else:
            decision.actions.requeue_after = remaining
    return decision.finish()


def with_metrics(status: Mapping[str, Any], metrics: Optional[Mapping[str, Any]], now: datetime,
                 generation: Optional[int], error: str = "") -> dict[str, Any]:
    """status with fresh figures, or with MetricsAvailable False and the reason; never fails."""
    updated = dict(status)
    conditions = list(updated.get("conditions") or [])
    if metrics is not None and metrics.get("available", True):
        updated["metrics"] = {**metrics, "available": True, "updatedAt": rfc3339(now)}
        updated["conditions"] = set_condition(conditions, METRICS_AVAILABLE, "True", "Reporting",
                                              "workers report throughput", now, generation)
    else:
        previous = dict(updated.get("metrics") or {})
        updated["metrics"] = {**previous, "available": False, "updatedAt": rfc3339(now)}
        updated["conditions"] = set_condition(conditions, METRICS_AVAILABLE, "False", "MetricsUnavailable",
                                              error or "the job's metrics actor could not be reached", now, generation)
    return updated
