"""A failed worker fails the whole group: collective training cannot lose a member. What then
happens is the restart decision's to say (api/restart.py, shared with `tandem run`): under
runPolicy.failurePolicy, FailJob fails the job now, Ignore restarts the group without counting it,
Count (no rule matched) restarts it until backoffLimit counted restarts are spent, then the job is
Failed naming the worker and exit code.

With in-place restarts (api/rejoin.py) a lost worker pod other than worker 0 is not a group
failure: the Job controller recreates it for its index and it rejoins; this step records that
recovery. Each group restart and rejoin is a status.recoveries entry whose seconds are filled in
once the new pods have started.

The failure must be known before it is judged: the rules match the failed worker's exit code,
reason and pod conditions. When the Job failed and the watch cache holds no failed pod of it (a
replica that just took the lease may not have seen the pods yet, however long ago the Job
failed), the pods are read from the API server directly before anything is decided.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Optional

from ...api.failure_rules import OOM_KILLED, Failure, Verdict, judge
from ...api.model import TrainingJob
from ...api.recoveries import recovery_text
from ...api.rejoin import (
    FAIL,
    REJOIN,
    lost_pod_outcome,
    lost_record,
    recorded_pods,
    rejoins,
    scaled_away,
    settle_seconds,
)
from ...api.restart import Restarts, decide_restart
from ...api.status import (
    MAX_RECOVERIES,
    RECOVERED_GROUP_RESTART,
    RECOVERED_IN_PLACE,
    RECOVERED_REJOINED,
    RecoveryStatus,
    parse_time,
    rfc3339,
)
from ...contract import DISRUPTION_TARGET, REASON_REJOINED
from ..actions import Event, PodsRead
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
        keep_recovery(decision, lost_record(failure, RECOVERED_GROUP_RESTART, so_far.total, rfc3339(decision.now)))
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


def recoveries_of(decision: Decision) -> list[RecoveryStatus]:
    return [RecoveryStatus.model_validate(r) for r in decision.status.get("recoveries") or []]


def write_recoveries(decision: Decision, records: list[RecoveryStatus]) -> None:
    decision.status["recoveries"] = [r.model_dump(by_alias=True, exclude_none=True, mode="json")
                                     for r in records[-MAX_RECOVERIES:]]


def keep_recovery(decision: Decision, record: RecoveryStatus) -> None:
    write_recoveries(decision, [*recoveries_of(decision), record])


def settle_recoveries(decision: Decision, job: TrainingJob, observed: Observed) -> None:
    """The seconds of the group restarts and rejoins whose new pods have started since."""
    records = recoveries_of(decision)
    if not any(r.seconds is None and r.recovered != RECOVERED_IN_PLACE for r in records):
        return
    started = {(p.restart, p.index): p.started for p in observed.pods if not p.deleting and p.started}
    if settle_seconds(records, started, job.spec.worker_count):
        write_recoveries(decision, records)


def handle_lost_pods(decision: Decision, job: TrainingJob, observed: Observed, pods: list[PodState]) -> bool:
    """Lost worker pods of a rejoining job (api/rejoin.py): each is judged by the failure rules;
    a rejoin is recorded once, with an event, and the group goes on; anything else is the group's
    failure (True: this step decided). Without a failed Job only: a Job that failed is the group's."""
    done = recorded_pods(recoveries_of(decision))
    for pod in pods:
        if not pod.deleting or pod.name in done:
            continue
        failure = pod_failure(pod)
        verdict = judge(failure, job.spec.run_policy.failure_policy)
        remaining = sum(1 for p in observed.pods_of(decision.restart) if p.phase in ("Pending", "Running"))
        outcome = lost_pod_outcome(failure, verdict, remaining, job.spec.min_worker_count)
        if outcome != REJOIN:
            message = failure_message([pod], "a worker pod was lost")
            act_on_failure(decision, job, failure, message, "WorkerFailed", stop_workers=outcome == FAIL)
            return True
        record = lost_record(failure, RECOVERED_REJOINED, decision.restart, pod.finished or rfc3339(decision.now))
        keep_recovery(decision, record)
        decision.actions.events.append(Event("Normal", REASON_REJOINED, recovery_text(record)))
    return False


def handle_failure(decision: Decision, job: TrainingJob, observed: Observed) -> bool:
    """Restart the group after a worker failure, or fail the job, as the failure rules say."""
    current = observed.job
    assert current is not None  # the group step returned early without a current Job
    settle_recoveries(decision, job, observed)
    # A pod a scale-down let go ends as a deleted one does, but nothing was lost (api/rejoin.py).
    pods = [p for p in failed_pods(observed, decision.restart) if not scaled_away(p.index, job.spec)]
    if rejoins(job.spec):
        # A suspended Job's pods (a queue's preemption) end as deleted ones do: no rejoin there.
        if not (current.failed or current.suspended) and handle_lost_pods(decision, job, observed, pods):
            return True
        # A pod that rejoined is not the cause of a later failure of its group.
        done = recorded_pods(recoveries_of(decision))
        pods = [p for p in pods if p.name not in done]
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
