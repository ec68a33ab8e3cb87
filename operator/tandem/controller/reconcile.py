"""The reconcile decision: a TrainingJob and what exists of it -> what to do. Pure.

Level-triggered: the function looks only at the object and the observed children, never at
what it did last time, so a controller killed mid-reconcile and restarted decides the same
thing again, and applying the same objects twice creates nothing twice.

The group lifecycle:
  Pending -> Running -> Succeeded
  a worker fails -> Restarting (old Job deleted, then recreated with restart+1) -> ...
  restarts == backoffLimit and a worker fails -> Failed (worker, exit code and reason named)
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

Each rule is a policy step in controller/policy/; this module only puts them in order.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

from ..api.admin_policy import AdminPolicy
from ..api.model import TrainingJob
from ..api.status import rfc3339
from .actions import NO_METRICS, Actions, Event, MetricsChannel
from .decision import Decision
from .observed import Observed
from .policy.after_finish import expire_after_finish
from .policy.deadline import enforce_deadline, requeue_before_deadline
from .policy.failure import handle_failure
from .policy.group import ensure_group
from .policy.hang import detect_hang, hold_progress_clock
from .policy.progress import track_progress
from .policy.queueing import check_scheduling, wait_in_queue
from .policy.suspend import suspend
from .policy.unstartable import fail_unstartable
from .policy.validity import run_policy_of, validate

#: The safe defaults: what an operator started without --admin-policy enforces.
DEFAULT_ADMIN_POLICY = AdminPolicy()

__all__ = ["Actions", "Event", "reconcile", "rfc3339"]  # writer.py imports Event and rfc3339 from here


def reconcile(obj: Mapping[str, Any], observed: Observed, now: datetime, metrics: MetricsChannel = NO_METRICS,
              admin_policy: AdminPolicy = DEFAULT_ADMIN_POLICY) -> Actions:
    decision = Decision(obj, now)
    if decision.deleting:
        return decision.finish()  # owner references let the garbage collector remove children
    job = validate(decision, obj, admin_policy)
    policy = job.spec.run_policy if job is not None else run_policy_of(obj)
    if not decision.finished:
        if job is not None:
            _run_group(decision, job, observed, metrics)
        elif decision.status.get("startTime") and not enforce_deadline(decision, policy, observed):
            requeue_before_deadline(decision, policy)  # an invalid edit stops no clock
    if decision.finished:
        expire_after_finish(decision, policy)
    return decision.finish()


def _run_group(decision: Decision, job: TrainingJob, observed: Observed, metrics: MetricsChannel) -> None:
    """The steps for a job that has not finished; the first step that decides ends the pass."""
    if suspend(decision, job, observed):
        hold_progress_clock(decision)
        return
    if not decision.status.get("startTime"):
        decision.status["startTime"] = rfc3339(decision.now)
    if enforce_deadline(decision, job.spec.run_policy, observed):
        return
    if ensure_group(decision, job, observed, metrics):
        return
    if wait_in_queue(decision, job, observed):
        hold_progress_clock(decision)
        return
    if fail_unstartable(decision, job, observed):
        return
    if handle_failure(decision, job, observed):
        return
    if check_scheduling(decision, job, observed):
        return
    if detect_hang(decision, job):
        return
    track_progress(decision, job, observed)
    requeue_before_deadline(decision, job.spec.run_policy)
