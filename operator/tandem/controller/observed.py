"""What the controller saw of a TrainingJob's children, reduced to what decisions need.

Built from raw API objects (dicts) by pure functions, so reconcile tests need no cluster.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from ..contract import COMPLETION_INDEX, RESTART_ANNOTATION


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


@dataclass(frozen=True)
class JobState:
    restart: int
    complete: bool = False
    failed: bool = False
    failed_reason: str = ""
    failed_since: str = ""
    deleting: bool = False
    uid: str = ""


@dataclass
class Observed:
    service: bool = False
    job: Optional[JobState] = None
    pods: list[PodState] = field(default_factory=list)
    #: The spec of the job's NetworkPolicy as the API server has it; None while there is none.
    network_policy: Optional[Mapping[str, Any]] = None

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
    )


#: Waiting reasons of a container on its normal way to running: nothing to report.
STARTING_REASONS = ("", "ContainerCreating", "PodInitializing")


def pod_state(obj: Mapping[str, Any]) -> PodState:
    meta, status = obj.get("metadata", {}), obj.get("status") or {}
    labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
    index = labels.get(COMPLETION_INDEX, annotations.get(COMPLETION_INDEX, "-1"))
    exit_code, reason, message = None, status.get("reason", ""), status.get("message", "")
    waiting_reason = waiting_message = ""
    containers = (obj.get("spec") or {}).get("containers") or [{}]
    image = containers[0].get("image", "")
    for container in status.get("containerStatuses") or []:
        state = container.get("state") or {}
        terminated, waiting = state.get("terminated"), state.get("waiting") or {}
        if terminated and (exit_code is None or terminated.get("exitCode", 0) != 0):
            exit_code = terminated.get("exitCode")
            reason = terminated.get("reason") or reason
            message = terminated.get("message") or message
            image = container.get("image") or image
        if waiting.get("reason", "") not in STARTING_REASONS and not waiting_reason:
            waiting_reason, waiting_message = waiting["reason"], waiting.get("message", "")
            image = container.get("image") or image
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
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
    )


def observe(service: Optional[Mapping[str, Any]], job: Optional[Mapping[str, Any]],
            pods: list[Mapping[str, Any]], network_policy: Optional[Mapping[str, Any]] = None) -> Observed:
    return Observed(
        service=service is not None,
        job=job_state(job) if job is not None else None,
        pods=[state for state in map(pod_state, pods) if state.index >= 0],  # workers only, not TensorBoard
        network_policy=(network_policy.get("spec") or {}) if network_policy is not None else None,
    )
