"""`tandem render FILE`: the Kubernetes objects a TrainingJob becomes."""

from __future__ import annotations

import json
from typing import Any, Iterable

import click

from .boundary import TandemCommand


def dump_yaml(objects: Iterable[dict[str, Any]]) -> str:
    import yaml

    return yaml.safe_dump_all(list(objects), sort_keys=False, default_flow_style=False, width=120)


@click.command(cls=TandemCommand)
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a field, e.g. --set workers=4.")
@click.option("--metrics-address", default="", help="URL of the figures gateway the workers report to (set by the operator).")
def render(file: str, output: str, overrides: tuple[str, ...], metrics_address: str) -> None:
    """Print the Kubernetes objects a TrainingJob becomes."""
    from ..api import load_job
    from ..render import render as render_objects

    objects = render_objects(load_job(file, overrides), metrics_address=metrics_address)
    if output == "json":
        click.echo(json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}, indent=2))
    else:
        click.echo(dump_yaml(objects), nl=False)
