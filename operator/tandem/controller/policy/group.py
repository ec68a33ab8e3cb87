"""The current worker group's children: created when missing, and never two groups at once.

The job's NetworkPolicy is also put back whenever it differs from the rendered one (deleted or
edited by hand), and applied before the Job, so that no worker pod starts unguarded.

A restart deletes the old Job in the foreground; the new one is created only once the old one
is gone, so a new group never meets the old one under the same pod hostnames.
"""

from __future__ import annotations

from typing import Any

from ...api.model import TrainingJob
from ...contract import REASON_SCALED, TENSORBOARD_SERVED, metrics_token_secret
from ...figures.token import job_token, secret_tag
from ...render import render, render_metrics_token
from ...render.context import tensorboard_address
from ..actions import NO_METRICS, Event, MetricsChannel, Resize
from ..decision import Decision
from ..observed import JobState, Observed, PodState, Refusal
from .refusals import current_refusals, pending_message, read_failed_creates, report_refusals

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
            TENSORBOARD_SERVED, "False", "NoSharedLogDir",
            "workers write event files, but a TensorBoard in the cluster cannot read them: set "
            "spec.tensorboard.claimName (a ReadWriteMany PVC) or a remote spec.tensorboard.logDir (gs://, s3://)")


def token_secret(job: TrainingJob, key: bytes) -> str:
    """The name of the job's token Secret: unpredictable without the gateway key (contract.metrics_token_secret)."""
    meta = job.metadata
    return metrics_token_secret(meta.name, secret_tag(key, meta.namespace, meta.name, meta.uid or ""))


def _refused(refusals: list[Refusal], child: dict[str, Any]) -> bool:
    return any(r.kind == child["kind"] and r.name == child["metadata"]["name"] for r in refusals)


def ensure_group(decision: Decision, job: TrainingJob, observed: Observed,
                 metrics: MetricsChannel = NO_METRICS) -> bool:
    """Create what is missing; True while the group is being created or the old one goes away.

    Nothing is created while a name is held by an object the job does not own, nor before a
    refused create's retry is due (policy/refusals.py)."""
    restart = decision.restart
    tokens = metrics.tokens and job.spec.metrics.enabled and bool(job.metadata.uid)
    secret = token_secret(job, metrics.key) if tokens else ""
    service, job_object, network_policy, *tensorboard = render(job, restart=restart, metrics_address=metrics.address,
                                                               token_secret=secret)
    refusals = current_refusals(observed, job.spec.worker_count, restart)
    may_create = report_refusals(decision, refusals)
    if may_create:
        # TensorBoard comes with the headless Service; a refused part of it is tried again.
        missing = [service, *tensorboard] if not observed.service else [
            child for child in tensorboard if _refused(refusals, child)]
        decision.actions.create.extend(missing)
        if observed.network_policy is None:
            decision.actions.create.append(network_policy)  # before the Job: no worker starts unguarded
    if observed.network_policy is not None and observed.network_policy != network_policy["spec"]:
        decision.actions.restore.append(network_policy)  # edited by hand: its spec put back
    tensorboard_status(decision, job)

    current = observed.job
    decision.status["workers"] = worker_counts(observed.pods_of(restart))
    decision.status["desiredWorkers"] = job.spec.worker_count
    decision.status["currentWorkers"] = running_workers(observed.pods_of(restart))
    if current is None:
        if may_create:
            if tokens:
                # The pods read it at start: created before the Job, with it at every (re)start.
                token = job_token(metrics.key, job.metadata.namespace, job.metadata.name, job.metadata.uid or "")
                decision.actions.secrets.append(render_metrics_token(job, token, secret))
            decision.actions.create.append(job_object)
        if refusals and decision.phase != "Restarting":
            decision.enter("Pending", *pending_message(refusals, decision.now), "Warning")
        elif decision.phase != "Restarting":
            decision.enter("Pending", "Created", f"created {job.spec.worker_count} workers")
        if may_create:
            decision.actions.requeue_after = CREATED_REQUEUE_SECONDS
        return True
    if current.deleting or current.restart != restart:
        # The previous group is still going away (foreground deletion); wait for it.
        if not current.deleting:
            decision.actions.delete_job = decision.job_ref
        decision.actions.requeue_after = DELETING_REQUEUE_SECONDS
        return True
    read_failed_creates(decision, current, observed, job.spec.worker_count)
    resize(decision, job, current)
    return False


def running_workers(pods: list[PodState]) -> int:
    """The scale subresource's current replicas: worker pods running, not being deleted."""
    return sum(1 for p in pods if p.phase == "Running" and not p.deleting)


def resize(decision: Decision, job: TrainingJob, current: JobState) -> None:
    """An elastic job's Job follows spec.workers in place: no group restart, the running workers
    go on and torchrun's rendezvous takes in (or lets go of) the workers the Job controller adds
    (or removes). A fixed-size job's count changes only with its next group, as any spec edit.
    With a queue the Job keeps the size Kueue admitted (docs/queues.md): Kueue's elastic workload
    slices are an alpha feature gate, off in the Kueue Tandem is tested with."""
    spec = job.spec
    if not spec.resizes_in_place or current.parallelism in (None, spec.worker_count):
        return
    decision.actions.resize_job = Resize(job.metadata.namespace, job.metadata.name, spec.worker_count)
    decision.actions.events.append(Event("Normal", REASON_SCALED, f"workers {current.parallelism} -> "
                                         f"{spec.worker_count} (range {spec.min_worker_count}.."
                                         f"{spec.max_worker_count}), in place"))
