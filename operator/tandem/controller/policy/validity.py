"""An invalid spec is reported, never acted on: the children stay as they are until it is fixed."""

from __future__ import annotations

from typing import Any, Mapping, Optional

from ...api.model import TrainingJob
from ...errors import SpecError
from ..decision import Decision


def validate(decision: Decision, obj: Mapping[str, Any]) -> Optional[TrainingJob]:
    """The validated model, or None with the job marked Invalid naming the first bad field."""
    try:
        job = TrainingJob.from_dict({k: v for k, v in obj.items() if k != "status"})
    except SpecError as error:
        path, message = error.problems[0]
        decision.enter("Invalid", "InvalidSpec", f"{path}: {message}", "Warning")
        return None
    if decision.phase == "Invalid":
        decision.condition("Invalid", "False", "SpecFixed", "the spec is valid now")
        decision.status.pop("phase")
    return job
