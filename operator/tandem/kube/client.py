"""The Python SDK: the same TrainingJobs as the CLI and kubectl, as objects.

    from tandem import Client, TrainingJob
    client = Client()                                   # current kubeconfig context
    client.submit(TrainingJob.from_yaml("jobs/mnist-ddp.yaml"))
    job = client.wait("mnist-ddp")                      # progress on the terminal
    print(job.status.phase, job.status.metrics)

Errors are Tandem's typed ones (tandem.errors: NotFound, Conflict alias AlreadyExists, Invalid,
Forbidden, Unreachable, JobFailed, Timeout), each with a message that says what to do; the
HTTP statuses behind them are read in one place, `tandem.kubeapi`.
"""

from __future__ import annotations

import builtins
import threading
import time
from pathlib import Path
from queue import Empty, Queue
from typing import Any, Callable, Iterator, Optional, Union

from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from ..api import SpecError, TrainingJob, load_job
from ..api.status import MetricsStatus, TrainingJobStatus
from ..contract import API_GROUP, COMPLETION_INDEX, FINISHED_PHASES, JOB_NAME_LABEL, PLURAL, VERSION
from ..errors import Invalid, JobFailed, NotFound, Timeout
from ..kubeapi import api_error, connect, translated

JobLike = Union[TrainingJob, dict[str, Any], str, Path]


def status_of(job: TrainingJob) -> TrainingJobStatus:
    return TrainingJobStatus.model_validate(job.status or {})


class Client:
    """TrainingJobs on the cluster of a kubeconfig (or in-cluster service account)."""

    def __init__(self, kubeconfig: Optional[str] = None, context: Optional[str] = None,
                 namespace: Optional[str] = None):
        connection = connect(kubeconfig, context)
        self.api = connection.api
        self.host = connection.host
        self.namespace = namespace or connection.namespace
        self.custom = k8s.CustomObjectsApi(self.api)
        self.core = k8s.CoreV1Api(self.api)

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with translated(what, host=f"the cluster at {self.host}"):
            return fn(*args, **kwargs)

    def _ns(self, namespace: Optional[str]) -> str:
        return namespace or self.namespace

    def submit(self, job: JobLike, namespace: Optional[str] = None) -> TrainingJob:
        """Create the TrainingJob; validated here first, so errors name the field before any API call."""
        job = _as_job(job)
        ns = self._ns(namespace if namespace else (job.metadata.namespace if job.metadata.namespace != "default" else None))
        body = job.to_dict()
        body["metadata"] = {k: v for k, v in body["metadata"].items() if k in ("name", "labels", "annotations")}
        body["metadata"]["namespace"] = ns
        body.pop("status", None)
        created = self._call(f"TrainingJob {ns}/{job.metadata.name}", self.custom.create_namespaced_custom_object,
                             API_GROUP, VERSION, ns, PLURAL, body)
        return TrainingJob.from_dict(created)

    def get(self, name: str, namespace: Optional[str] = None) -> TrainingJob:
        ns = self._ns(namespace)
        obj = self._call(f"TrainingJob {ns}/{name}", self.custom.get_namespaced_custom_object,
                         API_GROUP, VERSION, ns, PLURAL, name)
        return TrainingJob.from_dict(obj)

    def list(self, namespace: Optional[str] = None, all_namespaces: bool = False) -> list[TrainingJob]:
        if all_namespaces:
            result = self._call("TrainingJobs", self.custom.list_cluster_custom_object, API_GROUP, VERSION, PLURAL)
        else:
            result = self._call("TrainingJobs", self.custom.list_namespaced_custom_object,
                                API_GROUP, VERSION, self._ns(namespace), PLURAL)
        return [TrainingJob.from_dict(item) for item in result.get("items", [])]

    def delete(self, name: str, namespace: Optional[str] = None, wait: bool = False, timeout: float = 60) -> None:
        """Delete the job; its Service, Job and pods follow through owner references."""
        ns = self._ns(namespace)
        self._call(f"TrainingJob {ns}/{name}", self.custom.delete_namespaced_custom_object,
                   API_GROUP, VERSION, ns, PLURAL, name, propagation_policy="Foreground" if wait else "Background")
        deadline = time.monotonic() + timeout
        while wait and time.monotonic() < deadline:
            try:
                self.get(name, ns)
            except NotFound:
                return
            time.sleep(0.5)
        if wait:
            raise Timeout(f"TrainingJob {ns}/{name} still exists after {timeout} s")

    def wait(self, name: str, namespace: Optional[str] = None, timeout: Optional[float] = None,
             on_change: Optional[Callable[[TrainingJob], None]] = None, poll: float = 1.0) -> TrainingJob:
        """Until Succeeded (returned) or Failed/Invalid (JobFailed raised, with the job); `on_change`
        sees every new status; Timeout after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        last = None
        while True:
            job = self.get(name, namespace)
            status = status_of(job)
            snapshot = (status.phase, status.restarts, status.workers, status.metrics)
            if on_change and snapshot != last:
                on_change(job)
            last = snapshot
            if status.phase == "Succeeded":
                return job
            if status.phase in ("Failed", "Invalid"):
                failed = next((c for c in status.conditions if c.type == status.phase and c.status == "True"), None)
                raise JobFailed(f"{job.metadata.namespace}/{name} {status.phase}: {failed.message if failed else ''}",
                                job=job)
            if deadline is not None and time.monotonic() > deadline:
                raise Timeout(f"{name} still {status.phase or 'unscheduled'} after {timeout} s")
            time.sleep(poll)

    def metrics(self, name: str, namespace: Optional[str] = None) -> Optional[MetricsStatus]:
        return status_of(self.get(name, namespace)).metrics

    # builtins.list: in this class body `list` is the method above.
    def worker_pods(self, name: str, namespace: Optional[str] = None) -> builtins.list[k8s.V1Pod]:
        ns = self._ns(namespace)
        pods = self._call("pods", self.core.list_namespaced_pod, ns, label_selector=f"{JOB_NAME_LABEL}={name}").items
        return sorted(pods, key=lambda p: int((p.metadata.labels or {}).get(COMPLETION_INDEX, "0")))

    def logs(self, name: str, namespace: Optional[str] = None, worker: Optional[int] = None,
             follow: bool = False) -> Iterator[tuple[int, str]]:
        """(worker index, line) from the workers' containers; with follow, until they end."""
        ns = self._ns(namespace)
        pods = [p for p in self.worker_pods(name, ns)
                if worker is None or ((p.metadata and p.metadata.labels) or {}).get(COMPLETION_INDEX) == str(worker)]
        if not pods:
            raise NotFound(f"no worker pods of {ns}/{name}" + (f" with index {worker}" if worker is not None else ""))
        lines: Queue[tuple[int, Optional[str]]] = Queue()

        def pump(pod: k8s.V1Pod) -> None:
            meta = pod.metadata
            assert meta is not None and meta.name is not None  # the API server sets both on every pod
            index = int((meta.labels or {}).get(COMPLETION_INDEX, "0"))
            try:
                stream = self.core.read_namespaced_pod_log(meta.name, ns, container="worker", follow=follow,
                                                           _preload_content=False)
                # _preload_content=False returns the urllib3 response; the client types it as str.
                for raw in stream.stream():  # type: ignore[attr-defined]
                    for line in raw.decode("utf-8", "replace").splitlines():
                        lines.put((index, line))
            except ApiException as error:
                lines.put((index, f"(logs unavailable: {api_error(error, meta.name)})"))
            finally:
                lines.put((index, None))

        threads = [threading.Thread(target=pump, args=(p,), daemon=True) for p in pods]
        for thread in threads:
            thread.start()
        open_streams = len(threads)
        while open_streams:
            try:
                index, line = lines.get(timeout=0.5)
            except Empty:
                continue
            if line is None:
                open_streams -= 1
            else:
                yield index, line


def _as_job(job: JobLike) -> TrainingJob:
    if isinstance(job, TrainingJob):
        return job
    try:
        if isinstance(job, dict):
            return TrainingJob.from_dict(job)
        return load_job(job)
    except SpecError as error:
        raise Invalid(str(error)) from None


def is_finished(job: TrainingJob) -> bool:
    return status_of(job).phase in FINISHED_PHASES
