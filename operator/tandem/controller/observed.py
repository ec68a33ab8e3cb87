"""What the controller saw of a TrainingJob's children, reduced to what decisions need.

Built from raw API objects (dicts) by pure functions, so reconcile tests need no cluster.
A child counts as the job's only when its controller ownerReference carries the TrainingJob's
uid (a pod: the uid of the job's own Job). Names and labels prove nothing: anyone who may
create a Service in the namespace can give it the job's name and label, and a TrainingJob
deleted and created again has a new uid while its old Job may still be there. Such an object
is observed as a Refusal (a name conflict), never as the job's child.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Optional, Sequence

from ..contract import COMPLETION_INDEX, DISRUPTION_TARGET, RESTART_ANNOTATION
from .workload import WorkloadState


@dataclass(frozen=True)
class PodState:
    name: str
    index: int
    restart: int
    phase: str
    ready: bool = False
    exit_code: Optional[int] = None
    reason: str = ""
    message: str = ""
    deleting: bool = False
    #: Why the worker container is not running yet, as the kubelet says (ErrImageNeverPull,
    #: ImagePullBackOff, CreateContainerError...); empty while it is merely being created.
    waiting_reason: str = ""
    waiting_message: str = ""
    #: The worker container's image, as the pod names it.
    image: str = ""
    #: When the kubelet took the pod on (status.startTime, RFC 3339); empty before.
    started: str = ""
    #: The scheduler's message while it cannot place the pod (PodScheduled False, Unschedulable),
    #: and since when (RFC 3339); empty once placed.
    unschedulable_message: str = ""
    unschedulable_since: str = ""
    #: The pod's conditions as (type, status), for the failure rules' onPodConditions (DisruptionTarget).
    conditions: frozenset[tuple[str, str]] = frozenset()
    #: When the worker container ended (its terminated.finishedAt, RFC 3339); empty while it runs.
    finished: str = ""
    #: The reason of its True DisruptionTarget condition (PreemptionByScheduler, DeletionByPodGC,
    #: EvictionByEvictionAPI, TerminationByKubelet); empty when it was not disrupted.
    disruption: str = ""


@dataclass(frozen=True)
class JobState:
    restart: int
    complete: bool = False
    failed: bool = False
    failed_reason: str = ""
    failed_since: str = ""
    deleting: bool = False
    uid: str = ""
    #: metadata.creationTimestamp: a FailedCreate older than the Job is not about it.
    created: str = ""
    #: spec.suspend: Kueue holds a queued Job suspended until it admits it, and again to preempt it.
    suspended: bool = False
    #: spec.parallelism: an elastic job's Job follows spec.workers (policy/group.py resize).
    parallelism: Optional[int] = None


#: Reason of a Refusal whose name is held by an object the job does not own (the API's 409 reason).
ALREADY_EXISTS = "AlreadyExists"
#: Reason of the Job controller's event for a pod the API server refused it (quota, Pod Security...).
FAILED_CREATE = "FailedCreate"


@dataclass(frozen=True)
class Refusal:
    """A child the job needs but does not have, and what the API server said about it.

    Either a name conflict (reason AlreadyExists: the message names what holds the name) or the
    server's refusal to create it (reason Forbidden, Invalid...: the message is the server's).
    `attempts` counts the creates refused in a row and `at` is when the last one was, which is
    what the retry backoff is counted from; a conflict seen in the watch cache has no attempts:
    its object is watched, and its going away brings the job back."""

    kind: str
    name: str
    reason: str
    message: str
    attempts: int = 0
    at: str = ""

    @property
    def conflict(self) -> bool:
        return self.reason == ALREADY_EXISTS


@dataclass
class Observed:
    service: bool = False
    job: Optional[JobState] = None
    pods: list[PodState] = field(default_factory=list)
    #: Children the job needs but could not have: name conflicts and refused creates.
    refusals: list[Refusal] = field(default_factory=list)
    #: The spec of the job's own NetworkPolicy as the API server has it; None while there is none.
    network_policy: Optional[Mapping[str, Any]] = None
    #: Kueue's Workload of the current Job, as last read (queued jobs only); None before a read.
    workload: Optional[WorkloadState] = None
    #: The current Job's pods as read from the API server itself (not the watch cache), after a
    #: Job failure whose failed pod the cache did not hold; None: no such read for this Job.
    listed_pods: Optional[list[PodState]] = None

    def pods_of(self, restart: int) -> list[PodState]:
        return [p for p in self.pods if p.restart == restart and not p.deleting]


def _restart_of(meta: Mapping[str, Any]) -> int:
    try:
        return int((meta.get("annotations") or {}).get(RESTART_ANNOTATION, "0"))
    except ValueError:
        return 0


def job_state(obj: Mapping[str, Any]) -> JobState:
    meta, status = obj.get("metadata", {}), obj.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or [] if c.get("status") == "True"}
    failed = conditions.get("Failed") or conditions.get("FailureTarget")
    return JobState(
        restart=_restart_of(meta),
        complete="Complete" in conditions,
        failed=failed is not None,
        failed_reason=(failed or {}).get("reason", ""),
        failed_since=(failed or {}).get("lastTransitionTime", ""),
        deleting=bool(meta.get("deletionTimestamp")),
        uid=meta.get("uid", ""),
        created=meta.get("creationTimestamp", "") or "",
        suspended=(obj.get("spec") or {}).get("suspend") is True,
        parallelism=(obj.get("spec") or {}).get("parallelism"),
    )


#: Waiting reasons of a container on its normal way to running: nothing to report.
STARTING_REASONS = ("", "ContainerCreating", "PodInitializing")
#: How the runtime reports a container it could not start: terminated (exit 128) or waiting.
START_FAILURES = frozenset({"StartError", "ContainerCannotRun", "CreateContainerError", "RunContainerError"})


def _runtime_message(terminated: Mapping[str, Any]) -> str:
    """A terminated container's message only where the runtime wrote it (a start that failed).
    Otherwise it is the container's own termination message: tenant code writes it
    (/dev/termination-log, or its last log lines with FallbackToLogsOnError), so it may carry a
    mounted Secret, and status is read by whoever may get TrainingJobs, pods/log rights or not.
    It stays on the pod, behind the pods' RBAC."""
    return (terminated.get("message") or "") if terminated.get("reason") in START_FAILURES else ""


def pod_state(obj: Mapping[str, Any]) -> PodState:
    meta, status = obj.get("metadata", {}), obj.get("status") or {}
    labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
    index = labels.get(COMPLETION_INDEX, annotations.get(COMPLETION_INDEX, "-1"))
    exit_code, reason, message = None, status.get("reason", ""), status.get("message", "")
    waiting_reason = waiting_message = finished = ""
    containers = (obj.get("spec") or {}).get("containers") or [{}]
    image = containers[0].get("image", "")
    for container in status.get("containerStatuses") or []:
        state = container.get("state") or {}
        terminated, waiting = state.get("terminated"), state.get("waiting") or {}
        if terminated and (exit_code is None or terminated.get("exitCode", 0) != 0):
            exit_code = terminated.get("exitCode")
            reason = terminated.get("reason") or reason
            message = _runtime_message(terminated) or message
            finished = terminated.get("finishedAt") or ""
            image = container.get("image") or image
        if waiting.get("reason", "") not in STARTING_REASONS and not waiting_reason:
            waiting_reason, waiting_message = waiting["reason"], waiting.get("message", "")
            image = container.get("image") or image
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    scheduled: Mapping[str, Any] = next((c for c in status.get("conditions") or [] if c.get("type") == "PodScheduled"), {})
    unschedulable = scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable"
    return PodState(
        name=meta.get("name", ""),
        index=int(index) if str(index).lstrip("-").isdigit() else -1,
        restart=_restart_of(meta),
        phase=status.get("phase", "Pending"),
        ready=ready,
        exit_code=exit_code,
        reason=reason,
        message=message,
        deleting=bool(meta.get("deletionTimestamp")),
        waiting_reason=waiting_reason,
        waiting_message=waiting_message,
        image=image,
        started=status.get("startTime", ""),
        unschedulable_message=(scheduled.get("message") or "Unschedulable") if unschedulable else "",
        unschedulable_since=(scheduled.get("lastTransitionTime") or "") if unschedulable else "",
        conditions=frozenset((str(c.get("type", "")), str(c.get("status", ""))) for c in status.get("conditions") or []
                             if isinstance(c, Mapping)),
        finished=str(finished),
        disruption=next((str(c.get("reason") or "") for c in status.get("conditions") or []
                         if isinstance(c, Mapping) and c.get("type") == DISRUPTION_TARGET and c.get("status") == "True"), ""),
    )


def controller_of(obj: Mapping[str, Any]) -> Optional[Mapping[str, Any]]:
    """The object's controller ownerReference (at most one exists), or None."""
    references = (obj.get("metadata") or {}).get("ownerReferences") or []
    return next((ref for ref in references if ref.get("controller")), None)


def owned_by(obj: Mapping[str, Any], uid: str) -> bool:
    controller = controller_of(obj)
    return bool(uid) and controller is not None and controller.get("uid") == uid


def holder(obj: Mapping[str, Any]) -> str:
    """What holds an object's name, for a NameConflict message."""
    controller = controller_of(obj)
    if controller is None:
        return "no owner"
    return f"{controller.get('kind', '?')} {controller.get('name', '?')} (uid {controller.get('uid', '?')})"


def conflict_with(kind: str, obj: Mapping[str, Any]) -> Refusal:
    name = obj.get("metadata", {}).get("name", "")
    return Refusal(kind, name, ALREADY_EXISTS, f"{kind} {name} exists and is not this TrainingJob's: owned by {holder(obj)}")


def observe(uid: str, service: Optional[Mapping[str, Any]], job: Optional[Mapping[str, Any]],
            pods: list[Mapping[str, Any]], refusals: Iterable[Refusal] = (),
            network_policy: Optional[Mapping[str, Any]] = None,
            workload: Optional[WorkloadState] = None,
            listed: Optional[tuple[str, Sequence[Mapping[str, Any]]]] = None) -> Observed:
    """What the TrainingJob with `uid` has: children it does not own become conflicts.

    `refusals` are the API server's answers to this job's creates, as the runtime recorded them;
    `listed`: (the Job's uid, its pods) as last read from the API server directly."""
    found: dict[tuple[str, str], Refusal] = {}
    for kind, obj in (("Service", service), ("Job", job), ("NetworkPolicy", network_policy)):
        if obj is not None and not owned_by(obj, uid):
            conflict = conflict_with(kind, obj)
            found[(conflict.kind, conflict.name)] = conflict
    for refusal in refusals:
        found[(refusal.kind, refusal.name)] = refusal  # the recorded one carries the attempts
    own_job = job if job is not None and owned_by(job, uid) else None
    job_uid = (own_job or {}).get("metadata", {}).get("uid", "")
    listed_pods = None
    if listed is not None and job_uid and listed[0] == job_uid:
        listed_pods = [state for state in map(pod_state, (p for p in listed[1] if owned_by(p, job_uid)))
                       if state.index >= 0]
    return Observed(
        service=service is not None and owned_by(service, uid),
        job=job_state(own_job) if own_job is not None else None,
        # The workers of the job's own Job only: not TensorBoard's pods, nor an old Job's.
        pods=[state for state in map(pod_state, (p for p in pods if owned_by(p, job_uid))) if state.index >= 0],
        refusals=list(found.values()),
        network_policy=(network_policy.get("spec") or {})
        if network_policy is not None and owned_by(network_policy, uid) else None,
        workload=workload,
        listed_pods=listed_pods,
    )
