"""This machine behind the backend interface: `tandem run`, `tandem logs` and the figures of local runs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator, Optional

from rich.console import Console

from ..api.model import TrainingJob
from ..api.status import FailureStatus, MetricsStatus, TrainingJobStatus
from ..backends.base import Backend, JobHandle
from ..backends.function import JobOptions, ShippedFunction, function_job, job_name
from ..contract import REASON_DEADLINE_EXCEEDED, REASON_HUNG
from ..errors import Interrupted, JobFailed, NotFound
from .executor import private_dir
from .gpus import describe, worker_gpu_env
from .logs import latest_attempt, latest_metrics, read_lines, run_is_active, worker_logs
from .run import LocalRun, local_status, run_local
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
        #: How each job trained by this backend ended (`train` runs it through; `wait` reads it).
        self.finished: dict[str, TrainingJobStatus] = {}

    def _execute(self, job: TrainingJob) -> LocalRun:
        """Run the job through, with the live progress and the final table of `tandem run`."""
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
        runs_dir = "" if self.runs_dir == DEFAULT_RUNS_DIR else f" --runs-dir {self.runs_dir}"
        console.print(f"in a browser, with its charts and timeline: [bold]tandem dashboard{runs_dir}[/]", soft_wrap=True)
        return run

    def run(self, job: TrainingJob) -> int:
        run = self._execute(job)
        console = self.console
        board = run.result.tensorboard
        if board is not None:
            if sys.stdin.isatty():
                console.print(f"TensorBoard keeps serving at [bold]{board.url}[/]: Ctrl-C to stop")
                board.serve_until_interrupted()
            board.stop()
        return run.result.exit_code

    def train(self, function: ShippedFunction, options: JobOptions) -> JobHandle:
        """Write the function into the job's directory of runs (readable by this user only) and
        run it through, as `tandem run` would: this blocks until the job ends."""
        name = options.name or job_name(function.name)
        directory = self.runs_dir / name / "functions"
        private_dir(directory)
        path = directory / f"{function.digest[:16]}.json"
        path.write_text(function.to_json(), encoding="utf-8")
        path.chmod(0o600)
        job = function_job(function, str(path.resolve()), name, options)
        run = self._execute(job)
        if run.result.tensorboard is not None:
            run.result.tensorboard.stop()
        self.finished[name] = local_status(run)
        return JobHandle(self, name)

    def wait(self, name: str, timeout: Optional[float] = None) -> TrainingJobStatus:
        status = self.finished.get(name)
        if status is None:
            raise NotFound(f"{name!r} was not trained by this client (Client.local().train runs a job through)")
        if status.phase == "Succeeded":
            return status
        failure = status.last_failure
        if failure is not None and failure.reason == "Interrupted":
            raise Interrupted(f"{name} was interrupted: all workers stopped")
        raise JobFailed(f"{name} Failed: {describe_failure(failure)}", job=status)

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


def describe_failure(failure: Optional[FailureStatus]) -> str:
    if failure is None or failure.worker is None:
        return "no worker failed (see the logs)"
    if failure.reason == REASON_HUNG:
        return f"worker {failure.worker} reported no step (Hung)"
    if failure.reason == REASON_DEADLINE_EXCEEDED:
        return "activeDeadlineSeconds passed"
    return f"worker {failure.worker} exited with code {failure.exit_code}"
