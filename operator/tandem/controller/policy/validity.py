"""An invalid spec is reported, never acted on: no child is created or changed until it is fixed.

Two promises hold regardless, as an edit must not be a way out of them. The deadline and the
TTL are enforced from spec.runPolicy read on its own, so a running job made invalid by an edit
elsewhere in the spec still stops at activeDeadlineSeconds, and a finished one still expires.
And a finished phase (Succeeded, Failed) is never overwritten: the Invalid condition is set
beside it.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from pydantic import ValidationError

from ...api.admin_policy import AdminPolicy, violations
from ...api.model import RunPolicy, TrainingJob
from ...contract import REASON_REFUSED_BY_ADMIN_POLICY
from ...errors import SpecError
from ..decision import Decision

INVALID = "Invalid"


def _invalid_condition_true(decision: Decision) -> bool:
    return any(c.get("type") == INVALID and c.get("status") == "True" for c in decision.status.get("conditions") or [])


def _mark_invalid(decision: Decision, reason: str, message: str) -> None:
    """Invalid as the phase, or only as a condition beside a finished phase."""
    if decision.finished:
        decision.condition(INVALID, "True", reason, message)
    else:
        decision.enter(INVALID, reason, message, "Warning")


def validate(decision: Decision, obj: Mapping[str, Any], admin_policy: AdminPolicy) -> Optional[TrainingJob]:
    """The validated model, or None with the job marked Invalid naming the first bad field or
    the first admin-policy rule it breaks."""
    try:
        job = TrainingJob.from_dict({k: v for k, v in obj.items() if k != "status"})
    except SpecError as error:
        path, message = error.problems[0]
        _mark_invalid(decision, "InvalidSpec", f"{path}: {message}")
        return None
    refused = violations(admin_policy, job)
    if refused:
        _mark_invalid(decision, REASON_REFUSED_BY_ADMIN_POLICY, refused[0])
        return None
    if decision.phase == INVALID:
        decision.condition(INVALID, "False", "SpecFixed", "the spec is valid now")
        decision.status.pop("phase")
    elif _invalid_condition_true(decision):
        decision.condition(INVALID, "False", "SpecFixed", "the spec is valid now")
    return job


def run_policy_of(obj: Mapping[str, Any]) -> RunPolicy:
    """spec.runPolicy validated on its own, for a job whose whole spec is not valid.

    Should runPolicy itself be invalid (the CRD's schema refuses that at apply time), its
    defaults are all there is: no deadline and no TTL can be read from it."""
    try:
        return RunPolicy.model_validate((obj.get("spec") or {}).get("runPolicy") or {})
    except ValidationError:
        return RunPolicy()
