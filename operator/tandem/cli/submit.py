"""`tandem submit FILE`: create a TrainingJob on the cluster; the operator runs it."""

from __future__ import annotations

from typing import Optional

import click

from ..contract import API_GROUP, SINGULAR
from .boundary import TandemCommand
from .options import kube_client, kubeconfig_option, namespace_option


@click.command(cls=TandemCommand)
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE")
@namespace_option()
@kubeconfig_option()
def submit(file: str, overrides: tuple[str, ...], namespace: Optional[str], kubeconfig: Optional[str]) -> None:
    """Create a TrainingJob on the cluster (the operator runs it)."""
    from ..api import load_job

    job = load_job(file, overrides)
    created = kube_client(kubeconfig, namespace).submit(job)
    click.echo(f"{SINGULAR}.{API_GROUP}/{created.metadata.name} submitted in {created.metadata.namespace}; "
               f"follow it with: tandem get {created.metadata.name} -n {created.metadata.namespace}")
