"""`tandem bench FILE --workers 1,2,4`: the job here at several worker counts; is adding workers worth it?"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import click

from .boundary import TandemCommand
from .options import runs_dir_option


@click.command(cls=TandemCommand)
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("-w", "--workers", "workers", default="1,2,4", show_default=True, metavar="N,N,...",
              help="Worker counts to run, e.g. 1,2,4; the 1-worker run records the baseline.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a field for every run, e.g. a shorter command.")
@runs_dir_option("Where the runs keep logs and metrics.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="PNG to write (default: <runs-dir>/<job>/bench-<time>.png); figures go next to it as .json.")
def bench(file: str, workers: str, overrides: tuple[str, ...], runs_dir: str, output: Optional[str]) -> None:
    """Run a TrainingJob locally at several worker counts: throughput and scaling efficiency, table and plot."""
    from rich.console import Console

    from ..local.sweep import sweep

    sys.exit(sweep(file, workers, overrides, Path(runs_dir), Path(output) if output else None, Console(stderr=True)))
