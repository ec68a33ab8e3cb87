"""An invalid spec is reported, never acted on: the children stay as they are until it is fixed.

A spec the admin policy refuses is Invalid too (reason RefusedByAdminPolicy, the rule's one line):
the admission policy refuses it at apply time where it is installed, and this catches the rest
(a cluster without it, a policy made stricter after the job was applied)."""

from __future__ import annotations

from typing import Any, Mapping, Optional

from ...api.admin_policy import AdminPolicy, violations
from ...api.model import TrainingJob
from ...contract import REASON_REFUSED_BY_ADMIN_POLICY
from ...errors import SpecError
from ..decision import Decision


def validate(decision: Decision, obj: Mapping[str, Any], admin_policy: AdminPolicy) -> Optional[TrainingJob]:
    """The validated model, or None with the job marked Invalid naming the first bad field or
    the first admin-policy rule it breaks."""
    try:
        job = TrainingJob.from_dict({k: v for k, v in obj.items() if k != "status"})
    except SpecError as error:
        path, message = error.problems[0]
        decision.enter("Invalid", "InvalidSpec", f"{path}: {message}", "Warning")
        return None
    refused = violations(admin_policy, job)
    if refused:
        decision.enter("Invalid", REASON_REFUSED_BY_ADMIN_POLICY, refused[0], "Warning")
        return None
    if decision.phase == "Invalid":
        decision.condition("Invalid", "False", "SpecFixed", "the spec is valid now")
        decision.status.pop("phase")
    return job
