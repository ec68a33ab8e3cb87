"""`tandem run` with metrics: the local executor, its private Ray, the baseline, the figures.

The workers and the private Ray run in a network namespace of the run's own (`_sys.netns`):
TensorFlow's gRPC server and torch's TCPStore listen on every address, and there the only
address is loopback. Where the system allows no such namespace, the run goes on as before and
says so in one warning line.
"""

from __future__ import annotations

import contextlib
import importlib.util
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Optional

from rich.console import Console

from .._sys.netns import PrivateNetwork
from ..api.model import TrainingJob
from ..api.status import FailureStatus, MetricsStatus, ProgressStatus, TrainingJobStatus, rfc3339
from ..contract import REASON_HUNG
from ..figures.progress import done
from . import baseline as baselines, record
from .executor import LocalExecutor, RunResult


@dataclass
class LocalRun:
    result: RunResult
    metrics: Optional[MetricsStatus]
    baseline_source: str = ""
    baseline_recorded: Optional[Path] = None


@contextlib.contextmanager
def private_network(console: Console) -> Iterator[Optional[PrivateNetwork]]:
    """The run's private network namespace, or None after one warning line saying why not."""
    network = PrivateNetwork()
    if not network.start():
        console.print(f"[yellow]warning: other hosts can reach the workers' ports: no private network namespace "
                      f"here ({network.reason})[/]", soft_wrap=True)
        yield None
        return
    try:
        yield network
    finally:
        network.stop()


def run_local(job: TrainingJob, run_root: Path, console: Console, **options: Any) -> LocalRun:
    """Run the job on this machine, in a private network namespace where the system allows one;
    its record (local/record.py) ends with the status a cluster would show for it."""
    with private_network(console) as network:
        run = _run_local(job, run_root, console, network=network, **options)
    record.write(run.result.run_dir, job, local_status(run))
    return run


def local_status(run: LocalRun) -> TrainingJobStatus:
    """How a local run ended, as the status a cluster would show for it: phase, restarts, each
    recovery, the last failure, the final figures and the progress they tell."""
    result = run.result
    metrics = run.metrics
    elastic = result.elastic
    status = TrainingJobStatus(
        phase="Succeeded" if result.succeeded else "Failed", restarts=result.restarts,
        ignored_restarts=result.ignored_restarts, in_place_restarts=result.in_place_restarts,
        recoveries=list(result.recoveries.latest), metrics=metrics, start_time=result.started_at,
        completion_time=rfc3339(datetime.now(timezone.utc)),
        desired_workers=elastic.desired if elastic is not None else None,
        world_size=elastic.world_size if elastic is not None else None,
        tensorboard=result.tensorboard.url if result.tensorboard is not None else None)
    if metrics is not None and metrics.per_worker:
        status.progress = ProgressStatus(**done(metrics.per_worker))
    last = result.attempts[-1] if result.attempts else None
    if result.interrupted:
        status.last_failure = FailureStatus(reason="Interrupted", restart=result.restarts)
    elif last is not None and last.failed is not None:
        status.last_failure = FailureStatus(
            worker=last.failed.index, exit_code=None if last.reason == REASON_HUNG else last.failed.code,
            reason=last.reason,
            action=last.verdict.action if last.verdict else "", restart=last.restart)
    return status


def _run_local(job: TrainingJob, run_root: Path, console: Console, network: Optional[PrivateNetwork],
               **options: Any) -> LocalRun:
    """With spec.metrics.enabled, collect the job's figures through a local Ray."""
    spec, name = job.spec, job.metadata.name
    options["network"] = network
    if spec.metrics.enabled and importlib.util.find_spec("ray") is None:
        console.print("[yellow]metrics need Ray (pip install 'tandem[metrics]'); running without them[/]")
        if spec.run_policy.watches_progress:
            console.print("[yellow]without the figures no hang can be told: progressDeadlineSeconds and "
                          "startupDeadlineSeconds are not enforced in this run[/]")
        executor = LocalExecutor(job, run_root=run_root, console=console, **options)
        return LocalRun(executor.run(), MetricsStatus(available=False, reason="Ray is not installed"))
    if not spec.metrics.enabled:
        executor = LocalExecutor(job, run_root=run_root, console=console, **options)
        return LocalRun(executor.run(), None)

    from .figures_service import LocalMetrics

    baseline, source = baselines.choose(spec.metrics.baseline_throughput, run_root, name)
    metrics = LocalMetrics(job.metadata.namespace, name, spec.worker_count, baseline, spec.metrics.straggler_threshold)
    executor = LocalExecutor(job, run_root=run_root, console=console, **options,
                             metrics_address=metrics.address, status_hook=metrics.status_line,
                             progress_hook=lambda: metrics.latest,
                             extra_env=metrics.worker_env)
    metrics.session = executor.run_id
    metrics.start(executor.run_dir, network)  # Ray starts in the background while the workers start
    try:
        result = executor.run()
    finally:
        status = metrics.stop()
    run = LocalRun(result, status, source)
    if status.available and status.throughput and spec.worker_count == 1 and result.succeeded:
        run.baseline_recorded = baselines.record(
            run_root, name, status.throughput, procsPerWorker=spec.procs_per_worker,
            command=list(spec.command), run=str(executor.run_dir))
        if status.scaling_efficiency is None:
            status.baseline_throughput = status.throughput
            status.scaling_efficiency, status.efficiency_basis = 1.0, "baseline"
            run.baseline_source = "this run"
    return run
