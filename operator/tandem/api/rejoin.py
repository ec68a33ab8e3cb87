"""A lost worker pod, not a lost job: with in-place restarts (PyTorch's dynamic rendezvous), a
worker pod that is deleted, evicted or on a lost node is recreated by the Job controller for its
index, and its new agent rejoins the rendezvous; the other agents' processes fail in the broken
collective and re-rendezvous in place (spending their in-place budget, as torch does). The
operator does not restart the group; it records the rejoin in status.recoveries.

Two parts carry it: the workers' Indexed Job lets the Job controller recreate such a pod
(`pod_failure_policy`: Ignore for a DisruptionTarget condition and for the exit code of a deleted
worker, whose launcher ends on SIGTERM with 143), and the operator judges every lost pod it sees
(`lost_pod_outcome`): failure rules first (FailJob stays immediate; a job's own rule that counts
or ignores such a failure gets a group restart, as without rejoin), then the store's host.

Worker 0's agent hosts the rendezvous store: when its pod is lost the store goes with it, and
the others' agents cannot rejoin a new one under the same round. That case is a whole-group
restart (not counted, as the built-in disrupted-pod rule says): the documented fallback.

Pure, so that it is tested in milliseconds. The records' seconds are filled in once the new
pods have started (`settle_seconds`), from what the operator observes.
"""

from __future__ import annotations

from typing import Any, Iterable, Optional

from ..contract import DISRUPTION_TARGET
from ..frameworks.pytorch import PYTORCH
from .failure_rules import DISRUPTED_POD_RULE, Failure, Verdict, judge
from .model import RunPolicy, TrainingJobSpec
from .status import RECOVERED_GROUP_RESTART, RECOVERED_REJOINED, RecoveryStatus, parse_time

#: The worker whose agent hosts the c10d rendezvous store (frameworks/pytorch.py, is_host).
STORE_HOST = 0
#: The exit code of a deleted worker: its launcher stops on SIGTERM and says so (launch/torchrun.py).
#: Not 137: a SIGKILL is also how the kernel ends a container over its memory limit.
DELETED_EXIT_CODE = 128 + 15
#: The worker container's name in the rendered Job (render/templates/job.json.j2).
WORKER_CONTAINER = "worker"

GROUP_RESTART = "GroupRestart"
REJOIN = "Rejoin"
FAIL = "Fail"


def rejoins(spec: TrainingJobSpec) -> bool:
    """Whether a lost worker pod may rejoin: only torchrun's dynamic rendezvous lets a new agent in."""
    return spec.framework == PYTORCH.name and spec.run_policy.in_place_restarts >= 1


def _builtin(verdict: Verdict) -> bool:
    return verdict.builtin and verdict.rule_name == DISRUPTED_POD_RULE


def rules_allow_rejoin(policy: RunPolicy) -> bool:
    """The job's own rules leave a deleted or disrupted worker to the built-in rule (Ignore). When
    a rule of the job's decides such a failure (counts it, fails the job), the Job controller must
    not replace the pod behind the operator's back: the Job fails as without rejoin."""
    deleted = Failure(worker=1, exit_code=DELETED_EXIT_CODE, reason="Error", deleting=True)
    disrupted = Failure(worker=1, exit_code=DELETED_EXIT_CODE, reason="Error", deleting=True,
                        conditions=frozenset({(DISRUPTION_TARGET, "True")}))
    return all(_builtin(judge(failure, policy.failure_policy)) for failure in (deleted, disrupted))


def pod_failure_policy(spec: TrainingJobSpec) -> Optional[dict[str, Any]]:
    """The Indexed Job's podFailurePolicy with rejoin: such a pod's failure is not counted towards the
    Job's backoffLimit (0), so the Job controller creates a new pod for the index (once the old
    one has ended: podReplacementPolicy Failed) instead of failing the Job. None without rejoin."""
    if not (rejoins(spec) and rules_allow_rejoin(spec.run_policy)):
        return None
    return {"rules": [
        {"action": "Ignore", "onPodConditions": [{"type": DISRUPTION_TARGET, "status": "True"}]},
        {"action": "Ignore",
         "onExitCodes": {"containerName": WORKER_CONTAINER, "operator": "In", "values": [DELETED_EXIT_CODE]}},
    ]}


def scaled_away(worker: Optional[int], spec: TrainingJobSpec) -> bool:
    """Whether a worker pod was let go by a scale-down rather than lost: an elastic job's Job shrinks
    in place (parallelism and completions), and the Job controller deletes the pods of the indices
    it no longer has. Such a pod ends as a deleted one does (its launcher stops on SIGTERM, 143), so
    only its index, at or past spec.workers, tells it apart: nothing replaces it, so it neither
    rejoins nor restarts the group, and it is no cause of a later failure. spec.workers is read,
    not the Job's size, because the spec changed first; the Job's own update may reach the
    operator's cache after the pod's."""
    return spec.resizes_in_place and worker is not None and worker >= spec.worker_count


def lost_pod_outcome(failure: Failure, verdict: Verdict, remaining: int, min_workers: int) -> str:
    """What a lost worker pod (deleted, evicted, its node lost) leads to: REJOIN (the Job controller's
    new pod rejoins, no group restart), GROUP_RESTART (the failure rules' restart, counted or not)
    or FAIL (a FailJob rule). `remaining`: the group's workers still running without it."""
    if verdict.action == "FailJob":
        return FAIL
    if not _builtin(verdict) or failure.worker is None or failure.worker == STORE_HOST:
        return GROUP_RESTART  # a rule of the job's decided, or the store went with its host
    # The workers the group needs (all of a fixed-size job's; an elastic job's minWorkers): the
    # running ones and the lost pod's rejoining replacement.
    if remaining + 1 < min_workers:
        return GROUP_RESTART  # more than this pod is missing: a group restart brings them all back
    return REJOIN


def lost_record(failure: Failure, recovered: str, restart: int, failed_at: str) -> RecoveryStatus:
    """The status.recoveries entry of a lost pod (or a group restart): its seconds come later."""
    return RecoveryStatus(worker=failure.worker, exit_code=failure.exit_code,
                          reason=failure.disruption or ("PodDeleted" if failure.deleting else failure.reason) or "Error",
                          recovered=recovered, restart=restart, time=failed_at, pod=failure.pod or None)


def recorded_pods(records: Iterable[RecoveryStatus]) -> set[str]:
    """The lost pods already recorded as rejoined: never judged again (nor blamed for a later failure)."""
    return {r.pod for r in records if r.recovered == RECOVERED_REJOINED and r.pod}


def settle_seconds(records: list[RecoveryStatus], started: dict[tuple[int, int], str], workers: int) -> bool:
    """Fill in the seconds of group restarts and rejoins whose new pods have started. `started`:
    (group, worker) -> when that worker's current pod started (RFC 3339). A group restart of group
    g took until all `workers` of group g+1 started; a rejoin of worker w in group g, until w's new
    pod started after the failure. True when a record changed."""
    changed = False
    for record in records:
        if record.seconds is not None or record.time is None:
            continue
        if record.recovered == RECOVERED_REJOINED:
            keys = [(record.restart, record.worker if record.worker is not None else -1)]
        elif record.recovered == RECOVERED_GROUP_RESTART:
            keys = [(record.restart + 1, worker) for worker in range(workers)]
        else:
            continue
        seconds = _took(record.time, [started.get(key) for key in keys])
        if seconds is not None:
            record.seconds = seconds
            changed = True
    return changed


def _took(failed_at: str, started: list[Optional[str]]) -> Optional[float]:
    """Seconds from the failure to the last of the pods started; None while one has not started
    since the failure (a rejoin's index still shows its lost pod)."""
    try:
        failed = parse_time(failed_at)
        moments = [parse_time(at) if at else None for at in started]
    except ValueError:
        return None
    if failed is None or any(m is None or m < failed for m in moments):
        return None
    return round((max(m for m in moments if m is not None) - failed).total_seconds(), 1)
