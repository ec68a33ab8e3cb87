"""The current worker group's children: created when missing, and never two groups at once.

The job's NetworkPolicy is also put back whenever it differs from the rendered one (deleted or
edited by hand), and applied before the Job, so that no worker pod starts unguarded.

A restart deletes the old Job in the foreground; the new one is created only once the old one
is gone, so a new group never meets the old one under the same pod hostnames.
"""

from __future__ import annotations

from ...api.model import TrainingJob
from ...render import render
from ...render.context import tensorboard_address
from ..decision import Decision, job_ref
from ..observed import Observed, PodState

#: How soon to look again at a group just created, or at an old group still being deleted.
CREATED_REQUEUE_SECONDS = 5.0
DELETING_REQUEUE_SECONDS = 2.0


def worker_counts(pods: list[PodState]) -> dict[str, int]:
    return {
        "active": sum(1 for p in pods if p.phase in ("Pending", "Running")),
        "ready": sum(1 for p in pods if p.ready),
        "succeeded": sum(1 for p in pods if p.phase == "Succeeded"),
        "failed": sum(1 for p in pods if p.phase == "Failed"),
    }


def tensorboard_status(decision: Decision, job: TrainingJob) -> None:
    """Where the job's TensorBoard is, or why there is none."""
    board = job.spec.tensorboard
    if board.servable:
        decision.status["tensorboard"] = tensorboard_address(job)
    elif board.enabled:
        decision.condition(
            "TensorBoardServed", "False", "NoSharedLogDir",
            "workers write event files, but a TensorBoard in the cluster cannot read them: set "
            "spec.tensorboard.claimName (a ReadWriteMany PVC) or a remote spec.tensorboard.logDir (gs://, s3://)")


def ensure_group(decision: Decision, job: TrainingJob, observed: Observed, metrics_address: str = "") -> bool:
    """Apply what is missing; True while the group is being created or the old one goes away."""
    restart = decision.restart
    service, job_object, network_policy, *tensorboard = render(job, restart=restart, metrics_address=metrics_address)
    if not observed.service:
        decision.actions.apply.extend([service, *tensorboard])
    if observed.network_policy != network_policy["spec"]:
        decision.actions.apply.append(network_policy)
    tensorboard_status(decision, job)

    current = observed.job
    decision.status["workers"] = worker_counts(observed.pods_of(restart))
    if current is None:
        decision.actions.apply.append(job_object)
        if decision.phase != "Restarting":
            decision.enter("Pending", "Created", f"created {job.spec.worker_count} workers")
        decision.actions.requeue_after = CREATED_REQUEUE_SECONDS
        return True
    if current.deleting or current.restart != restart:
        # The previous group is still going away (foreground deletion); wait for it.
        if not current.deleting:
            decision.actions.delete_job = job_ref(job)
        decision.actions.requeue_after = DELETING_REQUEUE_SECONDS
        return True
    return False
