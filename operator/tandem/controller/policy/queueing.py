"""A job that waits says why: in Kueue's queue (spec.queueName), or for the scheduler
(runPolicy.schedulingTimeoutSeconds). Never silently partially started (docs/queues.md).

Under Kueue the Indexed Job is created suspended with the queue's label (render/context.py);
Kueue admits the whole group by unsuspending it, and preempts it by suspending it again, which
removes its pods. While the Job is suspended the job is Queued, with the queue's name and Kueue's
own reason read from the Job's Workload. A preempted group resumes as the same Job, with the same
restart number: Kueue's eviction is never a failure of the job's, so it spends no backoffLimit.

Without Kueue the scheduler places workers one by one: a group it cannot place whole would hold
the placed workers' GPUs while the rest stay Pending. Each pass quotes the scheduler's message
(PodScheduled False) in the Pending condition; after schedulingTimeoutSeconds the job is Failed
(its workers removed) or keeps waiting, as runPolicy.schedulingTimeoutAction says.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Optional

from ...api.model import TrainingJob
from ...api.status import parse_time, rfc3339
from ...contract import REASON_SCHEDULING_TIMEOUT, REASON_UNSCHEDULABLE
from ..actions import WorkloadRead
from ..decision import Decision
from ..observed import Observed, PodState
from ..workload import WorkloadState

#: How often a Queued job reads its Workload again: Kueue's verdicts change nothing the operator
#: watches, only admission does (it unsuspends the Job).
QUEUED_REFRESH_SECONDS = 10.0
#: Longest scheduler or Kueue message carried into a condition.
MESSAGE_LIMIT = 400


def suspended_by_kueue(job: TrainingJob, observed: Observed) -> bool:
    """Whether Kueue holds the current group: not admitted yet, or preempted (evicted).

    For the failure rules: pods that end while this is true were stopped by Kueue's eviction, not
    by the job, and no restart may be counted for them."""
    current = observed.job
    return job.spec.queue_name is not None and current is not None and current.suspended and not current.deleting


def queued_reason(queue: str, workload: Optional[WorkloadState]) -> tuple[str, str]:
    """The Queued condition's reason and message: Kueue's own words, with the queue's name."""
    where = f"waiting in LocalQueue {queue} for Kueue to admit all workers"
    if workload is None:
        return "Pending", f"{where} (its Workload is not read yet)"
    if workload.missing:
        return "NoWorkload", f"{where}: {workload.missing}"[:MESSAGE_LIMIT]
    if workload.evicted_reason:
        why = f"{where}; evicted ({workload.evicted_reason}): {workload.evicted_message}"
        if workload.message:
            why += f"; now: {workload.message}"
        return workload.evicted_reason, why[:MESSAGE_LIMIT]
    if workload.reason:
        return workload.reason, f"{where}: {workload.message}"[:MESSAGE_LIMIT]
    return "Pending", f"{where} (Workload {workload.name})"


def wait_in_queue(decision: Decision, job: TrainingJob, observed: Observed) -> bool:
    """While Kueue holds the Job suspended: Queued, naming the queue and Kueue's reason."""
    if not suspended_by_kueue(job, observed):
        return False
    assert observed.job is not None and job.spec.queue_name is not None  # suspended_by_kueue
    decision.enter("Queued", *queued_reason(job.spec.queue_name, observed.workload))
    ref = decision.job_ref
    decision.actions.read_failed_creates = None  # a suspended Job creates no pods: nothing was refused
    decision.actions.read_workload = WorkloadRead(ref.namespace, ref.name, observed.job.uid)
    decision.actions.requeue_after = QUEUED_REFRESH_SECONDS
    return True


def unschedulable(pods: list[PodState]) -> list[PodState]:
    """The pending workers the scheduler said it cannot place, by index."""
    return sorted((p for p in pods if p.phase == "Pending" and p.unschedulable_message), key=lambda p: p.index)


def check_scheduling(decision: Decision, job: TrainingJob, observed: Observed) -> bool:
    """Quote the scheduler while a worker cannot be placed; at schedulingTimeoutSeconds fail the
    job (True: the pass is decided) or keep waiting, as runPolicy.schedulingTimeoutAction says."""
    stuck = unschedulable(observed.pods_of(decision.restart))
    if not stuck:
        return False
    first, policy = stuck[0], job.spec.run_policy
    what = (f"{len(stuck)}/{job.spec.worker_count} workers cannot be scheduled; worker {first.index} "
            f"(pod {first.name}): {first.unschedulable_message}")[:MESSAGE_LIMIT]
    timeout = policy.scheduling_timeout_seconds
    if timeout is None:
        decision.enter("Pending", REASON_UNSCHEDULABLE, what, "Warning")
        return False
    since = min(parse_time(p.unschedulable_since) or decision.now for p in stuck)
    deadline = since + timedelta(seconds=timeout)
    if decision.now < deadline:
        # The moment, not the seconds left: the message stays the same from pass to pass.
        then = "fails" if policy.scheduling_timeout_action == "Fail" else "keeps waiting"
        decision.enter("Pending", REASON_UNSCHEDULABLE, f"{what}; the job {then} at {rfc3339(deadline)} "
                       f"(schedulingTimeoutSeconds {timeout}) if they stay unschedulable", "Warning")
        decision.actions.requeue_after = max((deadline - decision.now).total_seconds(), 1.0)
        return False
    if policy.scheduling_timeout_action == "Wait":
        decision.enter("Pending", REASON_UNSCHEDULABLE, f"{what}; unschedulable longer than schedulingTimeoutSeconds "
                       f"({timeout}), still waiting (schedulingTimeoutAction Wait)", "Warning")
        return False
    if observed.job is not None and not observed.job.deleting:
        decision.actions.delete_job = decision.job_ref  # the placed workers give their GPUs back
    decision.status["completionTime"] = rfc3339(decision.now)
    decision.enter("Failed", REASON_SCHEDULING_TIMEOUT,
                   f"{what}; not scheduled within schedulingTimeoutSeconds ({timeout})", "Warning")
    return True
