"""The job page's timeline: when the job started, each failure (worker, exit code, reason) and how
it was recovered, the failure that ended it, and its end. Pure, from the job's status alone, so a
local run and a cluster job tell their story the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from ..api.recoveries import recovery_text
from ..api.status import TrainingJobStatus

Kind = Literal["start", "failure", "end", "condition"]


@dataclass(frozen=True)
class Event:
    #: RFC 3339; "" when the status did not say (such events come last, in the order found).
    time: str
    kind: Kind
    text: str
    worker: Optional[int] = None
    #: How a failure was recovered: InPlace, GroupRestart, Rejoined; "" for the failure that ended the job.
    recovered: str = ""


def events(status: TrainingJobStatus, phase: str) -> list[Event]:
    """The job's events, oldest first."""
    found: list[Event] = []
    if status.start_time:
        found.append(Event(status.start_time, "start", "started"))
    for record in status.recoveries:
        found.append(Event(record.time or "", "failure", recovery_text(record), record.worker, record.recovered))
    failure = status.last_failure
    if phase in ("Failed", "Invalid") and failure is not None:
        code = "" if failure.exit_code is None else f" with exit code {failure.exit_code}"
        who = "the job" if failure.worker is None else f"worker {failure.worker}"
        rule = f", rule {failure.rule_name or failure.rule}" if failure.rule is not None or failure.rule_name else ""
        found.append(Event(failure.time or status.completion_time or "", "failure",
                           f"{who} failed{code} ({failure.reason or 'Error'}): {failure.action or 'not restarted'}{rule}",
                           failure.worker))
    for condition in status.conditions:
        if condition.status == "True" and condition.type not in ("Succeeded", "Failed", "Running", "Created"):
            found.append(Event(condition.last_transition_time or "", "condition",
                               f"{condition.type}: {condition.reason} {condition.message}".strip()))
    if status.completion_time and phase in ("Succeeded", "Failed"):
        found.append(Event(status.completion_time, "end", phase.lower()))
    return sorted(found, key=lambda e: (not e.time, e.time))
