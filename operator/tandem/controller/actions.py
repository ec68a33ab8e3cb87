"""What one reconcile decided, as plain data: the runtime carries it out and decides nothing.

Every value the runtime needs is here (the rendered children, the status to write, what to
delete, when to look again, and the validated spec's figures for a metrics read), so the
runtime never re-reads the raw object and cannot disagree with the decision.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass(frozen=True)
class ObjectRef:
    """An object to delete: the Indexed Job (named like its TrainingJob) or the TrainingJob."""

    namespace: str
    name: str


@dataclass(frozen=True)
class Resize:
    """The job's own Indexed Job (observed by uid) to resize in place: an elastic job scaled
    (spec.workers changed) sets the Job's parallelism and completions together, which elastic
    Indexed Jobs allow (Kubernetes 1.31+) without restarting any pod."""

    namespace: str
    name: str
    workers: int


@dataclass(frozen=True)
class MetricsChannel:
    """Where the workers send figures and the operator reads them: the figures gateway's URL,
    and the key the jobs' write tokens and the operator's reader token derive from
    (figures/token.py). Empty: no metrics path configured."""

    address: str = ""
    key: bytes = field(default=b"", repr=False)

    @property
    def tokens(self) -> bool:
        """Whether the workers get a write token (from the job's token Secret)."""
        return bool(self.address and self.key)


#: No metrics path: jobs run, and their status says figures are unavailable.
NO_METRICS = MetricsChannel()


@dataclass(frozen=True)
class MetricsRead:
    """Read the job's figures from the figures gateway and merge them into `status`.

    The numbers come from the validated spec: a TPU job that leaves `workers` unset has as many
    workers as its slice has hosts, and its efficiency must be measured against that count.
    """

    namespace: str
    name: str
    uid: str
    workers: int
    baseline_throughput: Optional[float]
    straggler_threshold: float
    generation: Optional[int]
    #: The status this pass ends with (filled in by Decision.finish); the figures go into it.
    status: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class JobRead:
    """A read about the job's own batch/v1 Job, found by the Job's uid: a Job of the same name
    made for an earlier TrainingJob, or by someone else, is not this job's."""

    namespace: str
    name: str
    job_uid: str


@dataclass(frozen=True)
class FailedCreatesRead(JobRead):
    """Find the Job controller's FailedCreate events of the job's own Job.

    A pod the API server refuses to the Job controller (a ResourceQuota, Pod Security) is said
    only there: the Job's status has no condition for it. The runtime records what it finds as
    the job's Refusal of kind Pod, which the next pass reports in ChildRejected."""


@dataclass(frozen=True)
class WorkloadRead(JobRead):
    """Read the Kueue Workload of the job's suspended Job and record it for the next pass, which
    names Kueue's reason in the Queued condition (policy/queueing.py)."""


@dataclass(frozen=True)
class PodsRead(JobRead):
    """Read the pods of the job's own Job from the API server, not the watch cache.

    Asked for when the Job failed and the cache holds no failed pod of it: a replica that just
    became leader may not have seen the pods yet, and the failure rules need the failed worker's
    exit code and reason. The runtime records what it reads, and the next pass judges with it."""


@dataclass
class Actions:
    """What the runtime must do, in this order: write status (after a metrics read, when one is
    asked for), delete the TrainingJob (and stop), delete the Job, create the token Secrets, create
    the children, restore edited ones, post events, requeue."""

    #: The job's token Secret (figures/token.py), created when missing and never read or changed:
    #: the operator may create Secrets, not read or patch them. Its name carries the job's uid.
    secrets: list[dict[str, Any]] = field(default_factory=list)
    #: Children to create, in order. Created, never applied: an object already holding the name
    #: is the job's own only if it carries the job's uid, and a foreign one is never overwritten.
    create: list[dict[str, Any]] = field(default_factory=list)
    #: Children of the job's own (observed by uid) whose spec differs from the rendered one: the
    #: spec is replaced with the rendered one (the NetworkPolicy, should someone edit it).
    restore: list[dict[str, Any]] = field(default_factory=list)
    delete_job: Optional[ObjectRef] = None
    resize_job: Optional[Resize] = None
    delete_training_job: Optional[ObjectRef] = None
    status: dict[str, Any] = field(default_factory=dict)  # empty: unchanged, nothing to write
    events: list[Event] = field(default_factory=list)
    requeue_after: Optional[float] = None
    read_metrics: Optional[MetricsRead] = None
    read_failed_creates: Optional[FailedCreatesRead] = None
    read_workload: Optional[WorkloadRead] = None
    read_pods: Optional[PodsRead] = None
