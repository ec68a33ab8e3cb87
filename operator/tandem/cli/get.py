"""`tandem get NAME`: one TrainingJob on the cluster, as a table, YAML or JSON."""

from __future__ import annotations

import json
from typing import Optional

import click

from .boundary import TandemCommand
from .options import kube_client, kubeconfig_option, namespace_option


@click.command(cls=TandemCommand)
@click.argument("name")
@click.option("-o", "--output", type=click.Choice(["table", "yaml", "json"]), default="table", show_default=True)
@namespace_option()
@kubeconfig_option()
def get(name: str, output: str, namespace: Optional[str], kubeconfig: Optional[str]) -> None:
    """Show one TrainingJob: phase, workers, restarts and its figures."""
    job = kube_client(kubeconfig, namespace).get(name)
    if output == "table":
        from rich.console import Console

        from ..kube.client import status_of
        from ..kube.table import status_table

        Console().print(status_table(name, status_of(job)))
    elif output == "json":
        click.echo(json.dumps(job.to_dict(), indent=2))
    else:
        import yaml

        click.echo(yaml.safe_dump(job.to_dict(), sort_keys=False), nl=False)
