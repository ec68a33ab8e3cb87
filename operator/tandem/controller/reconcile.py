"""The reconcile decision: a TrainingJob and what exists of it -> what to do. Pure.

Level-triggered: the function looks only at the object and the observed children, never at
what it did last time, so a controller killed mid-reconcile and restarted decides the same
thing again, and applying the same objects twice creates nothing twice.

The group lifecycle:
  Pending -> Running -> Succeeded
  a worker fails -> Restarting (old Job deleted, then recreated with restart+1) -> ...
  backoffLimit counted restarts spent and a worker fails -> Failed (worker, exit code and reason named)
  a failure rule (runPolicy.failurePolicy) says FailJob -> Failed now; Ignore -> Restarting, not counted
  Running and no step reported for progressDeadlineSeconds -> Restarting (Hung), under the failure rules
  a worker cannot start (image not to be had, command not in the image) -> Failed, no restart
  suspend -> Suspended (Job deleted) -> resume -> Pending
  spec.queueName: Job created suspended -> Queued (Kueue's reason) -> admitted -> Pending -> Running;
    preempted by Kueue (Job suspended again) -> Queued, no restart counted -> readmitted -> Running
  a worker unschedulable -> Pending (the scheduler's message) -> after schedulingTimeoutSeconds Failed or waiting
  activeDeadlineSeconds passed -> Failed (DeadlineExceeded), even with a spec made Invalid
  finished and ttlSecondsAfterFinished passed -> the TrainingJob is deleted, even if Invalid
  a child's name held by an object not owned by this TrainingJob's uid -> Pending, NameConflict

Each rule is a policy step in controller/policy/; this module only puts them in order (STEPS).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Mapping

from ..api.admin_policy import AdminPolicy
from ..api.model import TrainingJob
from ..api.status import rfc3339
from .actions import NO_METRICS, Actions, Event, MetricsChannel
from .decision import Decision
from .observed import Observed
from .policy.after_finish import expire_after_finish
from .policy.deadline import enforce_deadline, requeue_before_deadline, start_clock
from .policy.failure import handle_failure
from .policy.group import ensure_group
from .policy.hang import detect_hang, hold_progress_clock
from .policy.progress import track_progress
from .policy.queueing import check_scheduling, wait_in_queue
from .policy.suspend import suspend
from .policy.unstartable import fail_unstartable
from .policy.validity import run_policy_of, validate
from .timing import IMAGE_PULL_GRACE_SECONDS

#: The safe defaults: what an operator started without --admin-policy enforces.
DEFAULT_ADMIN_POLICY = AdminPolicy()

__all__ = ["Actions", "Event", "reconcile", "rfc3339"]  # writer.py imports Event and rfc3339 from here


@dataclass(frozen=True)
class Step:
    """One policy step of a job that has not finished. `run` returns True when the step decided
    the pass: the steps after it do not run."""

    name: str
    run: Callable[[Decision, TrainingJob, Observed, MetricsChannel], bool]


def _suspend(decision: Decision, job: TrainingJob, observed: Observed, metrics: MetricsChannel) -> bool:
    if not suspend(decision, job, observed):
        return False
    hold_progress_clock(decision)  # the time suspended is not silence
    return True


def _deadline(decision: Decision, job: TrainingJob, observed: Observed, metrics: MetricsChannel) -> bool:
    start_clock(decision)
    return enforce_deadline(decision, job.spec.run_policy, observed)


def _queued(decision: Decision, job: TrainingJob, observed: Observed, metrics: MetricsChannel) -> bool:
    if not wait_in_queue(decision, job, observed):
        return False
    hold_progress_clock(decision)  # nor is the time queued
    return True


def _progress(decision: Decision, job: TrainingJob, observed: Observed, metrics: MetricsChannel) -> bool:
    track_progress(decision, job, observed)
    requeue_before_deadline(decision, job.spec.run_policy)
    return True


#: The steps of a valid job that has not finished, in the order they run; the first that decides
#: ends the pass. What each decides: docs/architecture.md, "Reconcile steps" (a unit test checks
#: that it lists ORDER).
STEPS: tuple[Step, ...] = (
    Step("suspend", _suspend),
    Step("deadline", _deadline),
    Step("group", ensure_group),
    Step("queued", _queued),
    Step("unstartable", lambda decision, job, observed, metrics: fail_unstartable(decision, job, observed)),
    Step("failure", lambda decision, job, observed, metrics: handle_failure(decision, job, observed)),
    Step("scheduling", lambda decision, job, observed, metrics: check_scheduling(decision, job, observed)),
    Step("hang", lambda decision, job, observed, metrics: detect_hang(decision, job)),
    Step("progress", _progress),
)
#: Every step of a pass: validity first (an invalid job runs only its deadline), after_finish
#: once the job has finished.
ORDER: tuple[str, ...] = ("validity", *(step.name for step in STEPS), "after_finish")


def reconcile(obj: Mapping[str, Any], observed: Observed, now: datetime, metrics: MetricsChannel = NO_METRICS,
              admin_policy: AdminPolicy = DEFAULT_ADMIN_POLICY,
              image_pull_grace_seconds: float = IMAGE_PULL_GRACE_SECONDS) -> Actions:
    decision = Decision(obj, now, image_pull_grace_seconds)
    if decision.deleting:
        return decision.finish()  # owner references let the garbage collector remove children
    job = validate(decision, obj, admin_policy)
    policy = job.spec.run_policy if job is not None else run_policy_of(obj)
    if not decision.finished:
        if job is not None:
            _run_steps(decision, job, observed, metrics)
        elif decision.status.get("startTime") and not enforce_deadline(decision, policy, observed):
            requeue_before_deadline(decision, policy)  # an invalid edit stops no clock
    if decision.finished:
        expire_after_finish(decision, policy)
    return decision.finish()


def _run_steps(decision: Decision, job: TrainingJob, observed: Observed, metrics: MetricsChannel) -> None:
    for step in STEPS:
        if step.run(decision, job, observed, metrics):
            return
