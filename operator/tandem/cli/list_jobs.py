"""`tandem list`: the TrainingJobs on the cluster, with the columns of `kubectl get tj`."""

from __future__ import annotations

from typing import Optional

import click

from .boundary import TandemCommand
from .options import kube_client, kubeconfig_option, namespace_option

#: Wide enough to measure any table's natural width (rich measures within the console's width).
MEASURE_WIDTH = 10_000


@click.command("list", cls=TandemCommand)
@namespace_option()
@click.option("-A", "--all-namespaces", is_flag=True)
@kubeconfig_option()
def list_jobs(namespace: Optional[str], all_namespaces: bool, kubeconfig: Optional[str]) -> None:
    """List TrainingJobs with the same columns as `kubectl get tj` (api/columns.py)."""
    from rich.console import Console

    from ..kube.table import list_table

    jobs = kube_client(kubeconfig, namespace).list(all_namespaces=all_namespaces)
    table = list_table([job.to_dict() for job in jobs], all_namespaces)
    # As kubectl, never cut a cell to fit: piped output (80 columns to rich) showed "Succeed…".
    console = Console()
    natural = console.measure(table, options=console.options.update_width(MEASURE_WIDTH)).maximum
    Console(width=max(console.width, natural)).print(table)
