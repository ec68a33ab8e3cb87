"""`tandem run FILE`: run a TrainingJob here (the default) or on the cluster, through its backend."""

from __future__ import annotations

import sys
from typing import Optional

import click

from .boundary import TandemCommand
from .options import backend, kubeconfig_option, namespace_option, on_option, runs_dir_option


@click.command(cls=TandemCommand)
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("-w", "--workers", metavar="N|MIN:MAX",
              help="Override spec.workers: N workers, or MIN:MAX elastic PyTorch workers (start MAX, train on with MIN).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a field, e.g. --set runPolicy.backoffLimit=1.")
@on_option("Where to run: this machine, or the cluster of the current kubeconfig (needs the operator).")
@namespace_option("With --on kubernetes: the namespace (default: the kubeconfig context's).")
@kubeconfig_option("With --on kubernetes.")
@click.option("--resume", is_flag=True, help="Continue the job's latest local run from its checkpoints.")
@click.option("--debug", is_flag=True, help="Worker 0 gets this terminal, so breakpoint()/pdb works; the others wait.")
@click.option("--tensorboard", is_flag=True, help="Workers write TensorBoard event files; serve them on 127.0.0.1.")
@runs_dir_option("Where local runs keep logs, checkpoints and metrics.")
def run(file: str, workers: Optional[str], overrides: tuple[str, ...], target: str, namespace: Optional[str],
        kubeconfig: Optional[str], resume: bool, debug: bool, tensorboard: bool, runs_dir: str) -> None:
    """Run a TrainingJob: by default as worker processes on this machine."""
    from ..api import load_job

    job = load_job(file, [*overrides, *workers_overrides(workers)])
    if target == "kubernetes":
        where = backend(target, namespace=namespace, kubeconfig=kubeconfig)
    else:
        where = backend(target, runs_dir=runs_dir, resume=resume, debug=debug, tensorboard=tensorboard)
    sys.exit(where.run(job))


def workers_overrides(text: Optional[str]) -> list[str]:
    """--workers as --set overrides: N sets spec.workers as it always did; MIN:MAX also sets the
    elastic range, starting MAX workers."""
    from ..api.elastic import worker_range

    if not text:
        return []
    try:
        low, high, workers = worker_range(text)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--workers") from None
    if ":" not in text:
        return [f"spec.workers={workers}"]
    return [f"spec.minWorkers={low}", f"spec.maxWorkers={high}", f"spec.workers={workers}"]
