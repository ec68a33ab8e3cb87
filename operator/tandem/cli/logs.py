"""`tandem logs JOB`: a job's worker logs, here or on the cluster, each line prefixed with its worker."""

from __future__ import annotations

from typing import Optional

import click

from .boundary import TandemCommand
from .options import backend, kubeconfig_option, namespace_option, on_option, runs_dir_option


@click.command(cls=TandemCommand)
@click.argument("job")
@click.option("-w", "--worker", type=int, help="Only this worker's log.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines (Ctrl-C stops).")
@on_option()
@namespace_option("With --on kubernetes: the namespace.")
@kubeconfig_option("With --on kubernetes.")
@runs_dir_option()
def logs(job: str, worker: Optional[int], follow: bool, target: str, namespace: Optional[str],
         kubeconfig: Optional[str], runs_dir: str) -> None:
    """Print a job's worker logs, each line prefixed with its worker."""
    from rich.console import Console

    from ..local.console import worker_line

    console = Console(highlight=False, soft_wrap=True)
    lines = backend(target, namespace=namespace, kubeconfig=kubeconfig, runs_dir=runs_dir).logs(
        job, worker=worker, follow=follow)
    try:
        for index, line in lines:
            console.print(worker_line(index, line))
    except KeyboardInterrupt:
        pass
