"""A Kubernetes cluster behind the backend interface: `tandem run --on kubernetes`, `tandem logs`."""

from __future__ import annotations

import secrets
from typing import Any, Iterator, Optional, cast

from kubernetes import client as k8s
from rich.console import Console
from rich.live import Live

from ..api.model import TrainingJob
from ..api.status import MetricsStatus, TrainingJobStatus
from ..backends.base import Backend, JobHandle
from ..backends.function import JobOptions, ShippedFunction, function_job, job_name
from ..contract import (
    API_VERSION,
    FUNCTION_ANNOTATION,
    FUNCTION_CONFIGMAP_SUFFIX,
    FUNCTION_FILE,
    FUNCTION_MOUNT_PATH,
    FUNCTION_VOLUME,
    KIND,
    MAX_FUNCTION_BYTES,
)
from ..errors import JobFailed, NotShippable
from .client import Client, status_of
from .table import progress_line, status_table


class KubernetesBackend(Backend):
    """Jobs run by the operator on the cluster of `client`; this side submits and follows them."""

    name = "kubernetes"

    def __init__(self, client: Client, console: Optional[Console] = None, namespace: Optional[str] = None):
        """`namespace`: where `train`, `wait`, `logs` and `metrics` act (default: the client's)."""
        self.client = client
        self.console = console or Console(stderr=True)
        self.namespace = namespace or client.namespace

    def run(self, job: TrainingJob) -> int:
        """Submit, follow with a live status line, end with the status table. Ctrl-C stops
        following, not the job."""
        console, client = self.console, self.client
        created = client.submit(job)
        name, ns = created.metadata.name, created.metadata.namespace
        console.print(f"[bold]{name}[/] submitted to {ns} on {client.host}")
        with Live(console=console, transient=True, refresh_per_second=4) as live:
            try:
                final = client.wait(name, ns, on_change=lambda current: live.update(progress_line(name, status_of(current))))
                code = 0
            except JobFailed as failure:
                final, code = failure.job, 1
            except KeyboardInterrupt:
                console.print(f"stopped following; {name} keeps running (tandem delete {name} -n {ns} stops it)")
                return 130
        console.print(status_table(name, status_of(final)))
        return code

    def train(self, function: ShippedFunction, options: JobOptions) -> JobHandle:
        """Create the TrainingJob, then the ConfigMap with the function, owned by it (so it goes
        when the job goes). The caller creates both: the operator needs no new permission and
        never reads the function. A pod that starts first waits for the ConfigMap to mount."""
        payload = check_size(function)
        name = options.name or job_name(function.name, suffix=secrets.token_hex(3))
        job = with_function_volume(function_job(function, f"{FUNCTION_MOUNT_PATH}/{FUNCTION_FILE}", name, options))
        created = self.client.submit(job, self.namespace)
        try:
            # The client sends a plain dict as it is; its stubs only know its model classes.
            body = cast(k8s.V1ConfigMap, function_config_map(created, payload))
            self.client.core.create_namespaced_config_map(self.namespace, body)
        except Exception:
            self.client.delete(name, self.namespace)  # no job left waiting for a volume that never comes
            raise
        self.console.print(f"[bold]{name}[/] submitted to {self.namespace} on {self.client.host} "
                           f"(function {function.name}, in ConfigMap {name}{FUNCTION_CONFIGMAP_SUFFIX})")
        return JobHandle(self, name)

    def wait(self, name: str, timeout: Optional[float] = None) -> TrainingJobStatus:
        """Follow the job with a live status line until it ends."""
        with Live(console=self.console, transient=True, refresh_per_second=4) as live:
            final = self.client.wait(name, self.namespace, timeout=timeout,
                                     on_change=lambda current: live.update(progress_line(name, status_of(current))))
        self.console.print(status_table(name, status_of(final)))
        return status_of(final)

    def logs(self, name: str, worker: Optional[int] = None, follow: bool = False) -> Iterator[tuple[int, str]]:
        return self.client.logs(name, self.namespace, worker=worker, follow=follow)

    def metrics(self, name: str) -> Optional[MetricsStatus]:
        return self.client.metrics(name, self.namespace)


def check_size(function: ShippedFunction) -> str:
    """The function's file, or NotShippable when it is too big for the ConfigMap it travels in."""
    payload = function.to_json()
    size = len(payload.encode())
    if size > MAX_FUNCTION_BYTES:
        raise NotShippable(f"{function.name}'s source and kwargs take {size // 1024} KiB; on a cluster they travel "
                           f"in a ConfigMap, which holds at most {MAX_FUNCTION_BYTES // 1024} KiB: read large data "
                           f"inside the function (from storage) instead of passing it in kwargs")
    return payload


def with_function_volume(job: TrainingJob) -> TrainingJob:
    """The job's workers mount the function's ConfigMap read-only where its command reads it."""
    template = job.spec.pod_template
    template.volumes.append({"name": FUNCTION_VOLUME,
                             "configMap": {"name": f"{job.metadata.name}{FUNCTION_CONFIGMAP_SUFFIX}"}})
    template.volume_mounts.append({"name": FUNCTION_VOLUME, "mountPath": FUNCTION_MOUNT_PATH, "readOnly": True})
    return job


def function_config_map(job: TrainingJob, payload: str) -> dict[str, Any]:
    """The ConfigMap with the function's file, owned by the (created) TrainingJob: deleting the
    job deletes it. Not a controller reference: the operator does not manage it."""
    meta = job.metadata
    return {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {
            "name": f"{meta.name}{FUNCTION_CONFIGMAP_SUFFIX}", "namespace": meta.namespace,
            "annotations": {FUNCTION_ANNOTATION: meta.annotations.get(FUNCTION_ANNOTATION, "")},
            "ownerReferences": [{"apiVersion": API_VERSION, "kind": KIND, "name": meta.name, "uid": meta.uid}],
        },
        "data": {FUNCTION_FILE: payload},
    }
