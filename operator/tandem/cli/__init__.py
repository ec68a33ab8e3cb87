"""The `tandem` command line: the same TrainingJob, validated, rendered, run, or applied.

One module per command, each defined at module level and imported only when that command runs
(or when `--help` lists it), so `tandem --help` imports neither torch, Ray nor kubernetes. Every
command is a `boundary.TandemCommand`: the one place where a TandemError becomes its message on
stderr and its exit code.
"""

from __future__ import annotations

import click

from .lazy import LazyGroup

COMMANDS = {
    "bench": "tandem.cli.bench:bench",
    "crd": "tandem.cli.crd:crd",
    "dashboard": "tandem.cli.dashboard:dashboard",
    "delete": "tandem.cli.delete:delete",
    "get": "tandem.cli.get:get",
    "list": "tandem.cli.list_jobs:list_jobs",
    "logs": "tandem.cli.logs:logs",
    "operator": "tandem.cli.operator:operator",
    "render": "tandem.cli.render:render",
    "run": "tandem.cli.run:run",
    "submit": "tandem.cli.submit:submit",
    "validate": "tandem.cli.validate:validate",
}


@click.group(cls=LazyGroup, lazy_subcommands=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tandem")
def cli() -> None:
    """Run distributed PyTorch and TensorFlow training from one job spec."""


def main() -> None:
    cli(prog_name="tandem")


if __name__ == "__main__":
    main()
