"""A failed worker fails the whole group: collective training cannot lose a member. The group
restarts until runPolicy.backoffLimit, then the job is Failed naming the worker and exit code."""

from __future__ import annotations

from datetime import datetime, timedelta

from ...api.model import TrainingJob
from ..decision import Decision, parse_time, rfc3339
from ..observed import JobState, Observed, PodState

#: How long a Job failure may wait for its failed pod to appear in the cache.
POD_FAILURE_WAIT_SECONDS = 10
POD_FAILURE_REQUEUE_SECONDS = 1.0
RESTART_REQUEUE_SECONDS = 2.0
#: The kubelet's reason for a container the kernel killed for memory; it comes with no message.
OOM_KILLED = "OOMKilled"


def failure_message(pods: list[PodState], fallback: str) -> str:
    """Name the first failed worker by index, with its exit code and reason. Never the
    container's own termination message (observed.py keeps it out): it names the pod, whose
    logs say the rest to whoever may read them."""
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
    elif first.reason == OOM_KILLED:
        text += ": the container went over its memory limit (spec.resources.memory)"
    return text


def waiting_for_failed_pod(current: JobState, pods: list[PodState], now: datetime) -> bool:
    """The Job's watch can run ahead of the pods' (and a new leader's cache may not hold the
    pods yet): a fresh Job failure with no failed pod seen waits briefly for the pod, whose
    index and exit code the message names."""
    if any(p.phase == "Failed" for p in pods):
        return False
    failed_since = parse_time(current.failed_since) if current.failed_since else None
    return failed_since is not None and now - failed_since < timedelta(seconds=POD_FAILURE_WAIT_SECONDS)


def handle_failure(decision: Decision, job: TrainingJob, observed: Observed) -> bool:
    """Restart the group after a worker failure, or fail the job once backoffLimit is spent."""
    current = observed.job
    assert current is not None  # the group step returned early without a current Job
    pods = observed.pods_of(decision.restart)
    if not (current.failed or any(p.phase == "Failed" for p in pods)):
        return False
    if waiting_for_failed_pod(current, pods, decision.now):
        decision.actions.requeue_after = POD_FAILURE_REQUEUE_SECONDS
        return True
    message = failure_message(pods, f"the Job failed ({current.failed_reason or 'unknown reason'})")
    restart, limit = decision.restart, job.spec.run_policy.backoff_limit
    if restart < limit:
        decision.status["restarts"] = restart + 1
        decision.actions.delete_job = decision.job_ref
        decision.enter("Restarting", "WorkerFailed", f"{message}; restarting all workers ({restart + 1}/{limit})",
                       "Warning")
        decision.actions.requeue_after = RESTART_REQUEUE_SECONDS
        return True
    decision.status["completionTime"] = rfc3339(decision.now)
    decision.enter("Failed", "BackoffLimitExceeded", f"{message}; backoffLimit {limit} reached after {restart} restarts",
                   "Warning")
    return True
