"""`tandem.Client`: the Python SDK, on a cluster or on this machine, for YAML jobs and functions.

    from tandem import Client

    def train(lr: float, epochs: int): ...          # plain PyTorch DDP or TF MWMS code

    job = Client.local().train(train, kwargs={"lr": 0.1, "epochs": 2}, workers=2, framework="pytorch")
    job.wait()                                       # the final status; JobFailed names the worker
    Client().train(train, kwargs={...}, workers=4, framework="tensorflow",
                   image="tandem/tensorflow-worker:0.1.0", resources={"gpus": 1})

`Client()` is `tandem.kube.Client` (submit, get, list, wait, logs, delete on the kubeconfig's
cluster) plus `train`; `Client.local()` trains on this machine through the executor of `tandem
run` and needs no cluster. Both go through the backend interface (`tandem.backends.base`), so a
function is shipped the same way to either (`tandem.backends.function`: source and JSON, never
a pickle). This module sits above both executors, beside the CLI, as only it may import both.

Here `train` returns when the job has ended, showing the live progress of `tandem run` (in
Jupyter, rich's display) on the way; on a cluster it returns once the job is submitted and
`wait()` follows it. Either way `job.wait()` then gives the final status or raises JobFailed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional

from rich.console import Console

from .api.status import MetricsStatus
from .backends.base import JobHandle, train_function
from .backends.function import JobOptions
from .kube.backend import KubernetesBackend
from .kube.client import Client as KubeClient
from .local.backend import DEFAULT_RUNS_DIR, LocalBackend

__all__ = ["Client", "JobHandle", "LocalClient"]


class LocalClient:
    """Jobs on this machine, run by `tandem run`'s executor; their runs are kept under `runs_dir`."""

    def __init__(self, runs_dir: Path = DEFAULT_RUNS_DIR, console: Optional[Console] = None):
        self.backend = LocalBackend(runs_dir, console=console)

    def train(self, func: Callable[..., Any], kwargs: Optional[Mapping[str, Any]] = None, *, workers: int = 2,
              framework: str = "pytorch", image: Optional[str] = None,
              resources: Optional[Mapping[str, Any]] = None, env: Optional[Mapping[str, str]] = None,
              name: Optional[str] = None, spec: Optional[Mapping[str, Any]] = None) -> JobHandle:
        """Run `func(**kwargs)` on `workers` local workers; returns when the job has ended.
        `image` is recorded in the spec but unused here: local workers use this Python."""
        options = JobOptions(workers, framework, image, resources, env, name, None, spec)
        return train_function(self.backend, func, kwargs, options)

    def logs(self, name: str, worker: Optional[int] = None, follow: bool = False) -> Iterator[tuple[int, str]]:
        return self.backend.logs(name, worker=worker, follow=follow)

    def metrics(self, name: str) -> Optional[MetricsStatus]:
        return self.backend.metrics(name)


class Client(KubeClient):
    """TrainingJobs on the cluster of a kubeconfig; `Client.local()` for this machine."""

    @staticmethod
    def local(runs_dir: Path = DEFAULT_RUNS_DIR, console: Optional[Console] = None) -> LocalClient:
        return LocalClient(runs_dir, console)

    def train(self, func: Callable[..., Any], kwargs: Optional[Mapping[str, Any]] = None, *, workers: int = 2,
              framework: str = "pytorch", image: Optional[str] = None,
              resources: Optional[Mapping[str, Any]] = None, env: Optional[Mapping[str, str]] = None,
              name: Optional[str] = None, namespace: Optional[str] = None,
              spec: Optional[Mapping[str, Any]] = None, console: Optional[Console] = None) -> JobHandle:
        """Submit `func(**kwargs)` as a TrainingJob of `workers` pods; returns once submitted.
        The name defaults to the function's with a random suffix (each call is a new job)."""
        options = JobOptions(workers, framework, image, resources, env, name, namespace, spec)
        return train_function(KubernetesBackend(self, console, namespace), func, kwargs, options)
