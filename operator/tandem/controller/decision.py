"""The status and actions one reconcile pass builds up, shared by its policy steps.

The status stays the plain dict the operator writes (a merge patch of `status`); every key it
holds is declared in api.status.TrainingJobStatus, and tests/unit/test_reconcile.py checks so.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any, Mapping, Optional

from ..api.status import rfc3339
from ..contract import CONDITION_TYPES, FINISHED_PHASES, PHASES
from .actions import Actions, Event, ObjectRef
from .timing import IMAGE_PULL_GRACE_SECONDS


def set_condition(conditions: list[dict[str, Any]], type_: str, status: str, reason: str, message: str,
                  now: datetime, generation: Optional[int]) -> list[dict[str, Any]]:
    """Kubernetes convention: lastTransitionTime moves only when status changes. A type missing
    from contract.CONDITION_TYPES is refused: users read that list in `kubectl explain`."""
    if type_ not in CONDITION_TYPES:
        raise ValueError(f"condition type {type_!r} is not in contract.CONDITION_TYPES")
    result, found = [], False
    for condition in conditions:
        if condition.get("type") == type_:
            found = True
            changed = condition.get("status") != status
            condition = {**condition, "status": status, "reason": reason, "message": message,
                         "observedGeneration": generation}
            if changed or not condition.get("lastTransitionTime"):
                condition["lastTransitionTime"] = rfc3339(now)
        result.append(condition)
    if not found:
        result.append({"type": type_, "status": status, "reason": reason, "message": message,
                       "lastTransitionTime": rfc3339(now), "observedGeneration": generation})
    return result


class Decision:
    """Builds Actions while tracking the new status; one instance per reconcile, never shared."""

    def __init__(self, obj: Mapping[str, Any], now: datetime, image_pull_grace_seconds: float = IMAGE_PULL_GRACE_SECONDS):
        metadata = obj.get("metadata", {})
        self.now = now
        #: The operator's setting (--image-pull-grace-seconds), an input of the pass like `now`.
        self.image_pull_grace_seconds = image_pull_grace_seconds
        #: The TrainingJob, and its Indexed Job, which carries the same name
        #: (render/templates/job.json.j2); known even when the spec is invalid.
        self.job_ref = ObjectRef(metadata.get("namespace", ""), metadata.get("name", ""))
        self.generation: Optional[int] = metadata.get("generation")
        self.deleting = bool(metadata.get("deletionTimestamp"))
        self.old_status: dict[str, Any] = dict(obj.get("status") or {})
        self.status: dict[str, Any] = dict(self.old_status)
        self.status.setdefault("restarts", 0)
        self.status["observedGeneration"] = self.generation
        self.actions = Actions()

    @property
    def phase(self) -> Optional[str]:
        return self.status.get("phase")

    @property
    def finished(self) -> bool:
        return self.phase in FINISHED_PHASES

    @property
    def restart(self) -> int:
        """The current group's number: whole-group restarts so far."""
        return int(self.status.get("restarts", 0))

    def condition(self, type_: str, status: str, reason: str, message: str) -> None:
        """Set one condition that is not a lifecycle phase (e.g. TensorBoardServed)."""
        self.status["conditions"] = set_condition(self.status.get("conditions") or [], type_, status, reason,
                                                  message, self.now, self.generation)

    def enter(self, phase: str, reason: str, message: str, event_type: str = "Normal") -> None:
        """Enter `phase`: its condition True, the other lifecycle conditions False, one event."""
        previous = self.old_status.get("phase")
        conditions = list(self.status.get("conditions") or [])
        if phase != previous or not any(c.get("type") == phase for c in conditions):
            # Leaving a phase turns its condition False but keeps its reason and message: the
            # Restarting condition still says which worker failed, after the group recovered.
            for condition in conditions:
                if condition.get("type") in PHASES and condition.get("type") != phase and condition.get("status") == "True":
                    conditions = set_condition(conditions, condition["type"], "False", condition.get("reason", ""),
                                               condition.get("message", ""), self.now, self.generation)
            self.actions.events.append(Event(event_type, reason, message))
        conditions = set_condition(conditions, phase, "True", reason, message, self.now, self.generation)
        self.status["conditions"] = conditions
        self.status["phase"] = phase

    def finish(self) -> Actions:
        if self.status != self.old_status:
            self.actions.status = self.status
        if self.actions.read_metrics is not None:
            self.actions.read_metrics = replace(self.actions.read_metrics, status=self.status)
        return self.actions
