"""runPolicy.activeDeadlineSeconds on Kubernetes: the clock is status.startTime, written by the
first pass that runs the job; what its elapsed seconds mean is api/deadline.py's, shared with
`tandem run`.

It takes the RunPolicy alone, not the whole validated job: an edit that makes a running job's
spec invalid must not let it run past its deadline (validity.py reads the runPolicy on its own).
"""

from __future__ import annotations

from typing import Optional

from ...api.deadline import deadline_message, deadline_passed, seconds_left
from ...api.model import RunPolicy
from ...api.status import parse_time, rfc3339
from ...contract import REASON_DEADLINE_EXCEEDED
from ..decision import Decision
from ..observed import Observed


def start_clock(decision: Decision) -> None:
    """The first pass that runs the job starts the clock; no later pass moves it."""
    if not decision.status.get("startTime"):
        decision.status["startTime"] = rfc3339(decision.now)


def _elapsed(decision: Decision) -> Optional[float]:
    """Seconds since status.startTime; None before the job started."""
    started = parse_time(decision.status.get("startTime"))
    return None if started is None else (decision.now - started).total_seconds()


def enforce_deadline(decision: Decision, policy: RunPolicy, observed: Observed) -> bool:
    """Past the deadline: remove the workers and fail the job."""
    elapsed = _elapsed(decision)
    if elapsed is None or not deadline_passed(policy, elapsed):
        return False
    if observed.job is not None and not observed.job.deleting:
        decision.actions.delete_job = decision.job_ref
    decision.status["completionTime"] = rfc3339(decision.now)
    decision.enter("Failed", REASON_DEADLINE_EXCEEDED, deadline_message(policy), "Warning")
    return True


def requeue_before_deadline(decision: Decision, policy: RunPolicy) -> None:
    """Look again when the deadline passes, if nothing else brings the job back sooner."""
    elapsed = _elapsed(decision)
    remaining = None if elapsed is None else seconds_left(policy, elapsed)
    if remaining is None:
        return
    decision.actions.requeue_after = min(decision.actions.requeue_after or remaining, max(remaining, 1.0))
