"""A failed worker fails the whole group: collective training cannot lose a member. What then
happens is the restart decision's to say (api/restart.py, shared with `tandem run`): under
runPolicy.failurePolicy, FailJob fails the job now, Ignore restarts the group without counting it,
Count (no rule matched) restarts it until backoffLimit counted restarts are spent, then the job is
Failed naming the worker and exit code.

The failure must be known before it is judged: the rules match the failed worker's exit code,
reason and pod conditions. When the Job failed and the watch cache holds no failed pod of it (a
replica that just took the lease may not have seen the pods yet, however long ago the Job
failed), the pods are read from the API server directly before anything is decided.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Optional

from ...api.failure_rules import OOM_KILLED, Failure, Verdict
from ...api.model import TrainingJob
from ...api.restart import Restarts, decide_restart
from ...api.status import parse_time, rfc3339
from ...contract import DISRUPTION_TARGET
from ..actions import PodsRead
from ..decision import Decision
from ..observed import JobState, Observed, PodState

#: How long a Job failure may wait for its failed pod, once the pods were read from the API server.
POD_FAILURE_WAIT_SECONDS = 10
POD_FAILURE_REQUEUE_SECONDS = 1.0
RESTART_REQUEUE_SECONDS = 2.0


def _cause_order(pod: PodState) -> tuple[bool, str, int]:
    """A disrupted pod (preempted, evicted, its node lost) first: its peers fail because it went.
    Then the one that ended first (its peers fail a moment later, from the broken collective),
    then by index."""
    return (pod.conditions.isdisjoint({(DISRUPTION_TARGET, "True")}), pod.finished or "~", pod.index)


def failed_pods(observed: Observed, restart: int) -> list[PodState]:
    """The group's failed pods, root cause first: from the cache and from a direct read, deleting
    ones included (an evicted or preempted pod is deleted as it fails)."""
    found = {p.name: p for p in observed.pods if p.restart == restart and p.phase == "Failed"}
    for pod in observed.listed_pods or []:
        if pod.restart == restart and pod.phase == "Failed":
            found.setdefault(pod.name, pod)
    return sorted(found.values(), key=_cause_order)


def failure_message(pods: list[PodState], fallback: str) -> str:
    """Name the failed worker (the root cause) by index, with its exit code and reason. Never the
    container's own termination message (observed.py keeps it out): it names the pod, whose
    logs say the rest to whoever may read them."""
    failed = sorted((p for p in pods if p.phase == "Failed"), key=_cause_order)
    if not failed:
        return fallback
    first = failed[0]
    text = f"worker {first.index} (pod {first.name}) failed"
    if first.exit_code is not None:
        text += f" with exit code {first.exit_code}"
    if first.reason:
        text += f" ({first.reason})"
    if (DISRUPTION_TARGET, "True") in first.conditions:
        text += f" [{DISRUPTION_TARGET}{': ' + first.disruption if first.disruption else ''}]"
    elif first.deleting:
        text += " [pod deleted]"
    if first.message:
        text += f": {first.message[:200]}"
    elif first.reason == OOM_KILLED:
        text += ": the container went over its memory limit (spec.resources.memory)"
    return text


def pod_failure(pod: Optional[PodState]) -> Failure:
    if pod is None:
        return Failure(worker=None)
    return Failure(worker=pod.index, exit_code=pod.exit_code, reason=pod.reason, conditions=pod.conditions, pod=pod.name,
                   disruption=pod.disruption, deleting=pod.deleting)


def waiting_for_failed_pod(current: JobState, now: datetime) -> bool:
    """A fresh Job failure whose failed pod the direct read did not find yet waits briefly for it."""
    failed_since = parse_time(current.failed_since) if current.failed_since else None
    return failed_since is not None and now - failed_since < timedelta(seconds=POD_FAILURE_WAIT_SECONDS)


def restarts_so_far(decision: Decision) -> Restarts:
    """status.restarts and status.ignoredRestarts, as the restart decision reads them."""
    return Restarts(decision.restart, int(decision.status.get("ignoredRestarts") or 0))


def record_failure(decision: Decision, failure: Failure, verdict: Verdict) -> None:
    decision.status["lastFailure"] = {
        "worker": failure.worker, "pod": failure.pod or None, "exitCode": failure.exit_code,
        "reason": failure.reason or failure.disruption,
        "conditions": sorted(t for t, s in failure.conditions if s == "True"), "action": verdict.action,
        "rule": verdict.rule, "ruleName": verdict.rule_name, "restart": decision.restart,
        "time": rfc3339(decision.now),
    }


def act_on_failure(decision: Decision, job: TrainingJob, failure: Failure, message: str, restart_reason: str,
                   stop_workers: bool = False) -> None:
    """Do what the restart decision (api/restart.py) says of `failure`: restart the group,
    counted or not, or fail the job. `restart_reason`: the Restarting condition's (WorkerFailed,
    Hung); `stop_workers`: the group still runs (a hang) and must be removed even when the job fails.

    The one place the operator carries out a restart, so that another source of an uncounted
    restart (a queue's preemption) can come through here with a Failure that a rule, or its
    caller, maps to Ignore."""
    so_far = restarts_so_far(decision)
    outcome = decide_restart(failure, job.spec.run_policy, so_far)
    record_failure(decision, failure, outcome.verdict)
    text = f"{message}; {outcome.describe()}"
    if outcome.restart:
        decision.status["restarts"] = outcome.after.total
        if outcome.after.ignored != so_far.ignored:
            decision.status["ignoredRestarts"] = outcome.after.ignored
        decision.actions.delete_job = decision.job_ref
        decision.enter("Restarting", restart_reason, text, "Warning")
        decision.actions.requeue_after = RESTART_REQUEUE_SECONDS
        return
    if stop_workers:
        decision.actions.delete_job = decision.job_ref
    decision.status["completionTime"] = rfc3339(decision.now)
    decision.enter("Failed", outcome.reason, text, "Warning")


def handle_failure(decision: Decision, job: TrainingJob, observed: Observed) -> bool:
    """Restart the group after a worker failure, or fail the job, as the failure rules say."""
    current = observed.job
    assert current is not None  # the group step returned early without a current Job
    pods = failed_pods(observed, decision.restart)
    # What starts a failure: the Job failed, or a pod failed that nobody is deleting. A deleting
    # pod that ends Failed (its Job suspended by a queue, its group being replaced) is not one on
    # its own; once the Job fails, it may be the cause (an evicted pod is deleted as it fails).
    if not (current.failed or any(not p.deleting for p in pods)):
        return False
    if not pods and (observed.listed_pods is None or waiting_for_failed_pod(current, decision.now)):
        # Read the pods from the API server (again, while waiting): the cache may not hold them yet.
        decision.actions.read_pods = PodsRead(decision.job_ref.namespace, decision.job_ref.name, current.uid)
        decision.actions.requeue_after = POD_FAILURE_REQUEUE_SECONDS
        return True
    message = failure_message(pods, f"the Job failed ({current.failed_reason or 'unknown reason'}) "
                                    "and its failed pod is gone")
    act_on_failure(decision, job, pod_failure(pods[0] if pods else None), message, "WorkerFailed")
    return True
