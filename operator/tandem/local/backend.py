"""This machine behind the backend interface: `tandem run`, `tandem logs` and the figures of local runs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator, Optional

from rich.console import Console

from ..api.model import TrainingJob
from ..api.status import MetricsStatus
from ..backends.base import Backend
from ..errors import NotFound
from .gpus import describe, worker_gpu_env
from .logs import latest_attempt, latest_metrics, read_lines, run_is_active, worker_logs
from .run import run_local
from .table import print_run_summary

DEFAULT_RUNS_DIR = Path(".tandem/runs")


class LocalBackend(Backend):
    """Runs jobs as worker processes here; runs keep their logs and figures under `runs_dir`."""

    name = "local"

    def __init__(self, runs_dir: Path = DEFAULT_RUNS_DIR, console: Optional[Console] = None,
                 resume: bool = False, debug: bool = False, tensorboard: bool = False):
        """`resume`: continue the job's latest run from its checkpoints; `debug`: worker 0 gets
        this terminal (pdb); `tensorboard`: serve the workers' event files on 127.0.0.1."""
        self.runs_dir = Path(runs_dir)
        self.console = console or Console(stderr=True)
        self.resume, self.debug, self.tensorboard = resume, debug, tensorboard

    def run(self, job: TrainingJob) -> int:
        console, spec = self.console, job.spec
        gpu_env = worker_gpu_env(job)  # refuses, in one line, a run that needs more GPUs than there are
        console.print(
            f"[bold]{job.metadata.name}[/]: {spec.framework} {spec.strategy}, {spec.worker_count} workers "
            f"x {spec.procs_per_worker} processes, on this machine (logs in {self.runs_dir}/{job.metadata.name})"
        )
        if describe(gpu_env):
            console.print(describe(gpu_env))
        run = run_local(job, self.runs_dir, console, resume=self.resume, debug=self.debug,
                        tensorboard=self.tensorboard or spec.tensorboard.enabled, gpu_env=gpu_env)
        print_run_summary(console, job, run.result, run.metrics, run.baseline_source)
        if run.baseline_recorded:
            console.print(f"one-worker baseline recorded: {run.baseline_recorded}")
        board = run.result.tensorboard
        if board is not None:
            if sys.stdin.isatty():
                console.print(f"TensorBoard keeps serving at [bold]{board.url}[/]: Ctrl-C to stop")
                board.serve_until_interrupted()
            board.stop()
        return run.result.exit_code

    def logs(self, name: str, worker: Optional[int] = None, follow: bool = False) -> Iterator[tuple[int, str]]:
        attempt = latest_attempt(self.runs_dir, name)
        if attempt is None:
            raise NotFound(f"no local run of {name!r} under {self.runs_dir} (start one with `tandem run`)")
        files = worker_logs(attempt, worker)
        if not files:
            raise NotFound(f"no log of worker {worker} in {attempt}")
        yield from read_lines(files, follow=follow, keep_going=lambda: run_is_active(attempt))

    def metrics(self, name: str) -> Optional[MetricsStatus]:
        figures = latest_metrics(self.runs_dir, name)
        if figures is None:
            return None
        figures.pop("final", None)  # the history's marker of the run's last line, not a figure
        return MetricsStatus.model_validate(figures)
