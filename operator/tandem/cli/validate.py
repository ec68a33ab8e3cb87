"""`tandem validate FILE...`: check TrainingJob files, one line per problem."""

from __future__ import annotations

import sys

import click

from .boundary import TandemCommand, spec_error_lines


@click.command(cls=TandemCommand)
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
def validate(files: tuple[str, ...]) -> None:
    """Check TrainingJob files; print one line per problem, naming the field."""
    from ..api import SpecError, load_jobs

    bad = 0
    for path in files:
        try:
            jobs = load_jobs(path)
        except SpecError as error:  # every file is checked, so this one is reported here, not raised
            for line in spec_error_lines(path, error):
                click.echo(line, err=True)
            bad += 1
            continue
        for job in jobs:
            spec = job.spec
            click.echo(f"{path}: ok ({job.metadata.name}: {spec.framework} {spec.strategy}, {spec.worker_count} workers)")
    if bad:
        sys.exit(1)
