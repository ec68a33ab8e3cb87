"""A Kubernetes cluster behind the backend interface: `tandem run --on kubernetes`, `tandem logs`."""

from __future__ import annotations

from typing import Iterator, Optional

from rich.console import Console
from rich.live import Live

from ..api.model import TrainingJob
from ..api.status import MetricsStatus
from ..backends.base import Backend
from ..errors import JobFailed
from .client import Client, status_of
from .table import progress_line, status_table


class KubernetesBackend(Backend):
    """Jobs run by the operator on the cluster of `client`; this side submits and follows them."""

    name = "kubernetes"

    def __init__(self, client: Client, console: Optional[Console] = None):
        self.client = client
        self.console = console or Console(stderr=True)

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

    def logs(self, name: str, worker: Optional[int] = None, follow: bool = False) -> Iterator[tuple[int, str]]:
        return self.client.logs(name, worker=worker, follow=follow)

    def metrics(self, name: str) -> Optional[MetricsStatus]:
        return self.client.metrics(name)
