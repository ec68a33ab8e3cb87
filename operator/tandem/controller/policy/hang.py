"""runPolicy.progressDeadlineSeconds and startupDeadlineSeconds: a Running group whose workers
report no step for the deadline is restarted with reason Hung, under the failure rules (a rule
with onReasons: [Hung] decides; none: Count).

The steps come through the metrics channel: each read of the figures (policy/metrics.py) updates
status.progress (figures/progress.py, pure, on the operator's clock), and this step reads it. A
hang is judged on figures read successfully only: while the gateway cannot be read, no hang is
called (MetricsAvailable False says why), and an operator without a figures gateway never calls
one. The spec cannot ask for a deadline without metrics.enabled (the model and the CRD refuse it).
"""

from __future__ import annotations

from typing import Optional

from ...api.failure_rules import Failure
from ...api.model import TrainingJob
from ...api.status import ProgressStatus
from ...contract import REASON_HUNG
from ...figures.progress import hang
from ..decision import Decision
from .failure import act_on_failure


def _progress(decision: Decision) -> Optional[ProgressStatus]:
    raw = decision.status.get("progress")
    return ProgressStatus.model_validate(raw) if isinstance(raw, dict) else None


def hold_progress_clock(decision: Decision) -> None:
    """A group held without running (suspended, or Queued after Kueue preempted it) drops its
    progress record, so that the time held never reads as silence once it resumes: the clock
    starts again from the first read after it (null removes the field in the status merge patch).
    For a first group (restart 0) the steps from before the hold count as seen at that read; the
    startup deadline does not apply to its restart."""
    if decision.status.get("progress") is not None:
        decision.status["progress"] = None


def detect_hang(decision: Decision, job: TrainingJob) -> bool:
    """While Running: restart (or fail) a group whose workers went silent; True if it did."""
    policy = job.spec.run_policy
    if not policy.watches_progress or decision.phase != "Running":
        return False
    found = hang(_progress(decision), decision.restart, policy.progress_deadline_seconds,
                 policy.startup_deadline_seconds)
    if found is None:
        return False
    failure = Failure(worker=found.worker, reason=REASON_HUNG)
    act_on_failure(decision, job, failure, found.message(), REASON_HUNG, stop_workers=True)
    return True

