"""`tandem list`: the TrainingJobs on the cluster, with the columns of `kubectl get tj`."""

from __future__ import annotations

from typing import Optional

import click

from .boundary import TandemCommand
from .options import kube_client, kubeconfig_option, namespace_option


@click.command("list", cls=TandemCommand)
@namespace_option()
@click.option("-A", "--all-namespaces", is_flag=True)
@kubeconfig_option()
def list_jobs(namespace: Optional[str], all_namespaces: bool, kubeconfig: Optional[str]) -> None:
    """List TrainingJobs with the same columns as `kubectl get tj`."""
    from rich.console import Console
    from rich.table import Table

    from ..kube.client import status_of
    from ..kube.table import fmt

    jobs = kube_client(kubeconfig, namespace).list(all_namespaces=all_namespaces)
    table = Table(box=None)
    for column in (["NAMESPACE"] if all_namespaces else []) + ["NAME", "FRAMEWORK", "WORKERS", "PHASE",
                                                                 "THROUGHPUT", "EFFICIENCY", "RESTARTS"]:
        table.add_column(column)
    for job in jobs:
        status = status_of(job)
        metrics = status.metrics
        row = [job.metadata.name, job.spec.framework, str(job.spec.worker_count), status.phase or "",
               fmt(metrics.throughput if metrics else None), fmt(metrics.scaling_efficiency if metrics else None, 2),
               str(status.restarts)]
        table.add_row(*([job.metadata.namespace] if all_namespaces else []), *row)
    Console().print(table)
