"""runPolicy.activeDeadlineSeconds: counted from status.startTime, across restarts.

It takes the RunPolicy alone, not the whole validated job: an edit that makes a running job's
spec invalid must not let it run past its deadline (validity.py reads the runPolicy on its own).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Optional

from ...api.model import RunPolicy
from ...api.status import parse_time, rfc3339
from ..decision import Decision
from ..observed import Observed


def deadline_of(policy: RunPolicy, started: Optional[datetime]) -> Optional[datetime]:
    """When the job must be stopped; None without a deadline or before the job started."""
    seconds = policy.active_deadline_seconds
    if seconds is None or started is None:
        return None
    return started + timedelta(seconds=seconds)


def _deadline(decision: Decision, policy: RunPolicy) -> Optional[datetime]:
    return deadline_of(policy, parse_time(decision.status.get("startTime")))


def enforce_deadline(decision: Decision, policy: RunPolicy, observed: Observed) -> bool:
    """Past the deadline: remove the workers and fail the job."""
    deadline = _deadline(decision, policy)
    if deadline is None or decision.now < deadline:
        return False
    if observed.job is not None and not observed.job.deleting:
        decision.actions.delete_job = decision.job_ref
    decision.status["completionTime"] = rfc3339(decision.now)
    decision.enter("Failed", "DeadlineExceeded",
                   f"the job ran longer than activeDeadlineSeconds ({policy.active_deadline_seconds})",
                   "Warning")
    return True


def requeue_before_deadline(decision: Decision, policy: RunPolicy) -> None:
    """Look again when the deadline passes, if nothing else brings the job back sooner."""
    deadline = _deadline(decision, policy)
    if deadline is None:
        return
    remaining = (deadline - decision.now).total_seconds()
    decision.actions.requeue_after = min(decision.actions.requeue_after or remaining, max(remaining, 1.0))
