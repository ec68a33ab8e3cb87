"""`tandem delete NAME`: delete a TrainingJob; its Service, Job and pods go with it."""

from __future__ import annotations

from typing import Optional

import click

from ..contract import API_GROUP, SINGULAR
from .boundary import TandemCommand
from .options import kube_client, kubeconfig_option, namespace_option


@click.command(cls=TandemCommand)
@click.argument("name")
@namespace_option()
@kubeconfig_option()
@click.option("--wait", is_flag=True, help="Return only once the job and its workers are gone.")
def delete(name: str, namespace: Optional[str], kubeconfig: Optional[str], wait: bool) -> None:
    """Delete a TrainingJob; its Service, Job and pods go with it."""
    kube_client(kubeconfig, namespace).delete(name, wait=wait)
    click.echo(f"{SINGULAR}.{API_GROUP}/{name} deleted")
