"""A healthy group's progress: Succeeded when the Job completes, Running once every worker runs."""

from __future__ import annotations

from ...api.model import TrainingJob
from ...api.status import rfc3339
from ..decision import Decision
from ..observed import Observed
from .metrics import schedule_metrics


def track_progress(decision: Decision, job: TrainingJob, observed: Observed) -> None:
    current = observed.job
    assert current is not None  # the group step returned early without a current Job
    workers = job.spec.worker_count
    if current.complete:
        decision.status["completionTime"] = rfc3339(decision.now)
        decision.enter("Succeeded", "Completed", f"all {workers} workers succeeded")
        schedule_metrics(decision, job, final=True)  # every worker's last records are in by now
        return
    running = sum(1 for p in observed.pods_of(decision.restart) if p.phase in ("Running", "Succeeded"))
    if running == workers:
        decision.enter("Running", "AllWorkersRunning", f"{running} workers running")
        schedule_metrics(decision, job)
    elif decision.phase not in ("Pending", "Restarting"):
        decision.enter("Pending", "WorkersStarting", f"{running}/{workers} workers running")
