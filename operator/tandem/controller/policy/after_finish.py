"""runPolicy.ttlSecondsAfterFinished: finished jobs keep their children for logs until the TTL,
then the TrainingJob is deleted and owner references take the children with it. Like the
deadline, it needs only the RunPolicy, so that a spec made invalid after the finish still expires."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Optional

from ...api.model import RunPolicy
from ...api.status import parse_time
from ..decision import Decision


def ttl_left(ttl_seconds: Optional[int], finished: Optional[datetime], now: datetime) -> Optional[float]:
    """Seconds until the TrainingJob expires (zero or less: now); None when it never does."""
    if ttl_seconds is None or finished is None:
        return None
    return (finished + timedelta(seconds=ttl_seconds) - now).total_seconds()


def expire_after_finish(decision: Decision, policy: RunPolicy) -> None:
    left = ttl_left(policy.ttl_seconds_after_finished,
                    parse_time(decision.status.get("completionTime")), decision.now)
    if left is None:
        return
    if left <= 0:
        decision.actions.delete_training_job = decision.job_ref
    else:
        decision.actions.requeue_after = left
