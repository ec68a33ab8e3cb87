"""The one interface both executors implement: this machine (`tandem.local.backend`) and a
Kubernetes cluster (`tandem.kube.backend`).

Modelled on the Kubeflow SDK's `TrainingBackend` (kubeflow/trainer/backends/base.py), which its
local-process and Kubernetes backends implement: the CLI's `--on local|kubernetes` picks one
and from then on talks only to this interface, so a command is written once for both places.

What is here is what both places can honestly do; `train` and `wait` serve `Client.train(func)`
(docs/functions.md): here `train` runs the job to its end and `wait` reports how it ended; on a cluster
`train` submits and `wait` follows. Submitting a YAML job without waiting, listing, getting
and deleting jobs exist only on a cluster (a local run lives as long as the terminal that runs
it), so they stay on the SDK's `tandem.kube.Client`.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Optional

if TYPE_CHECKING:  # the interface itself imports nothing heavy: `tandem --help` stays fast
    from ..api.model import TrainingJob
    from ..api.status import MetricsStatus, TrainingJobStatus
    from .function import JobOptions, ShippedFunction


class Backend(abc.ABC):
    """Where a TrainingJob's workers run."""

    #: The `--on` value that selects this backend.
    name: str

    @abc.abstractmethod
    def run(self, job: TrainingJob) -> int:
        """Run the job to its end, showing its progress and final figures on the terminal;
        returns the exit code the command ends with (0 succeeded, 130 interrupted, else failed)."""

    @abc.abstractmethod
    def logs(self, name: str, worker: Optional[int] = None, follow: bool = False) -> Iterator[tuple[int, str]]:
        """(worker index, line) of the job's latest run, or of one worker; with follow, new lines
        until the workers end. Raises NotFound when the job or the worker has no logs here."""

    @abc.abstractmethod
    def train(self, function: ShippedFunction, options: JobOptions) -> JobHandle:
        """Run the shipped function as a TrainingJob of `options`; the handle waits, reads logs
        and figures. Locally it returns once the job ended; on a cluster once it is submitted."""

    @abc.abstractmethod
    def wait(self, name: str, timeout: Optional[float] = None) -> TrainingJobStatus:
        """The final status of a job this backend trained, once Succeeded; JobFailed naming the
        worker when it failed, Timeout after `timeout` seconds."""

    @abc.abstractmethod
    def metrics(self, name: str) -> Optional[MetricsStatus]:
        """The job's latest figures (throughput, efficiency, straggler), or None if it has none."""


class JobHandle:
    """A job `Client.train` started: wait for its end, read its logs and its figures, wherever
    it runs (the backend it came from answers)."""

    def __init__(self, backend: Backend, name: str):
        self.backend, self.name = backend, name

    def __repr__(self) -> str:
        return f"JobHandle({self.name!r} on {self.backend.name})"

    def wait(self, timeout: Optional[float] = None) -> TrainingJobStatus:
        """The final status once Succeeded; JobFailed (naming the worker) when it failed."""
        return self.backend.wait(self.name, timeout)

    def logs(self, follow: bool = False, worker: Optional[int] = None) -> Iterator[tuple[int, str]]:
        """(worker index, line) of the job's workers: `for i, line in job.logs(follow=True): ...`."""
        return self.backend.logs(self.name, worker=worker, follow=follow)

    def metrics(self) -> Optional[MetricsStatus]:
        """Throughput, scaling efficiency and straggler, or None when the job has no figures."""
        return self.backend.metrics(self.name)


def train_function(backend: Backend, func: Callable[..., Any], kwargs: Optional[Mapping[str, Any]],
                   options: JobOptions) -> JobHandle:
    """Ship the function (refused here, before anything starts, when it cannot travel) and hand
    it to the backend: the one path both `Client.local().train` and `Client().train` take."""
    from .function import ship

    return backend.train(ship(func, kwargs), options)
