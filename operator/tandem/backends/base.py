"""The one interface both executors implement: this machine (`tandem.local.backend`) and a
Kubernetes cluster (`tandem.kube.backend`).

Modelled on the Kubeflow SDK's `TrainingBackend` (kubeflow/trainer/backends/base.py), which its
local-process and Kubernetes backends implement: the CLI's `--on local|kubernetes` picks one
and from then on talks only to this interface, so a command is written once for both places.

What is here is what both places can honestly do. Submitting without waiting, listing, getting
and deleting jobs exist only on a cluster (a local run lives as long as the terminal that runs
it), so they stay on the SDK's `tandem.kube.Client`.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Iterator, Optional

if TYPE_CHECKING:  # the interface itself imports nothing heavy: `tandem --help` stays fast
    from ..api.model import TrainingJob
    from ..api.status import MetricsStatus


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
    def metrics(self, name: str) -> Optional[MetricsStatus]:
        """The job's latest figures (throughput, efficiency, straggler), or None if it has none."""
