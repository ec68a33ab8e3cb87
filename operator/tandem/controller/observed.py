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


def pod_state(obj: Mapping[str, Any]) -> PodState:
    meta, status = obj.get("metadata", {}), obj.get("status") or {}
    labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
    index = labels.get(COMPLETION_INDEX, annotations.get(COMPLETION_INDEX, "-1"))
    exit_code, reason, message = None, status.get("reason", ""), status.get("message", "")
    for container in status.get("containerStatuses") or []:
        terminated = (container.get("state") or {}).get("terminated")
        if terminated and (exit_code is None or terminated.get("exitCode", 0) != 0):
            exit_code = terminated.get("exitCode")
            reason = terminated.get("reason") or reason
            message = terminated.get("message") or message
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
    )


def observe(service: Optional[Mapping[str, Any]], job: Optional[Mapping[str, Any]],
            pods: list[Mapping[str, Any]]) -> Observed:
    return Observed(
        service=service is not None,
        job=job_state(job) if job is not None else None,
        pods=[state for state in map(pod_state, pods) if state.index >= 0],  # workers only, not TensorBoard
    )
