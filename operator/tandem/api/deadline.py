"""runPolicy.activeDeadlineSeconds: when its clock starts and when the deadline has passed. Pure,
and shared by the operator (controller/policy/deadline.py) and `tandem run` (local/executor.py),
so that one deadline means the same on both.

The clock starts once, when the executor first takes the job on to run it: on Kubernetes the
first reconcile of the job not suspended (it writes status.startTime then), locally as `tandem
run` starts the first group. It never starts again: every restart, and every wait after the start
(Queued in Kueue, a worker unschedulable or pulling its image, a time Suspended), counts, because
the deadline bounds what the job may cost in all, not one group's run. Each executor measures the
elapsed seconds on its own clock (the operator: now - status.startTime; `tandem run`: a monotonic
clock); what that many seconds mean is decided here.
"""

from __future__ import annotations

from typing import Optional

from .model import RunPolicy


def seconds_left(policy: RunPolicy, elapsed: float) -> Optional[float]:
    """Seconds before the deadline, `elapsed` seconds after the clock started; 0 or less: passed.
    None: the job has no deadline."""
    seconds = policy.active_deadline_seconds
    return None if seconds is None else seconds - elapsed


def deadline_passed(policy: RunPolicy, elapsed: float) -> bool:
    """True from the second the deadline passes on: a job with activeDeadlineSeconds 60 stops at 60 s."""
    left = seconds_left(policy, elapsed)
    return left is not None and left <= 0


def deadline_message(policy: RunPolicy) -> str:
    """What a job stopped at its deadline says (the Failed condition; `tandem run`'s line)."""
    return f"the job ran longer than activeDeadlineSeconds ({policy.active_deadline_seconds})"
