"""A healthy group's progress: Succeeded when the Job completes, Running once every worker runs.

A Running elastic job stays Running while at least minWorkers of its workers run: it trains on
with them (torchrun's rendezvous of MIN:MAX nodes), so calling it Pending would be untrue, and the
figures (and status.worldSize) are read only while Running."""

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
    elif job.spec.min_workers is not None and decision.phase == "Running" and running >= job.spec.min_worker_count:
        decision.enter("Running", "ElasticWorkersRunning",
                       f"{running}/{workers} workers running, at least minWorkers ({job.spec.min_worker_count})")
        schedule_metrics(decision, job)
    elif decision.phase not in ("Pending", "Restarting"):
        decision.enter("Pending", "WorkersStarting", f"{running}/{workers} workers running")
