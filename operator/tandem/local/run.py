"""`tandem run` with metrics: the local executor, its private Ray, the baseline, the figures."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from rich.console import Console

from ..api.model import TrainingJob
from ..api.status import MetricsStatus
from . import baseline as baselines
from .executor import LocalExecutor, RunResult


@dataclass
class LocalRun:
    result: RunResult
    metrics: Optional[MetricsStatus]
    baseline_source: str = ""
    baseline_recorded: Optional[Path] = None


def run_local(job: TrainingJob, run_root: Path, console: Console, **options: Any) -> LocalRun:
    """Run the job on this machine; with spec.metrics.enabled, collect its figures through a local Ray."""
    spec, name = job.spec, job.metadata.name
    if spec.metrics.enabled and importlib.util.find_spec("ray") is None:
        console.print("[yellow]metrics need Ray (pip install 'tandem[metrics]'); running without them[/]")
        executor = LocalExecutor(job, run_root=run_root, console=console, **options)
        return LocalRun(executor.run(), MetricsStatus(available=False, reason="Ray is not installed"))
    if not spec.metrics.enabled:
        executor = LocalExecutor(job, run_root=run_root, console=console, **options)
        return LocalRun(executor.run(), None)

    from .ray_session import LocalMetrics

    baseline, source = baselines.choose(spec.metrics.baseline_throughput, run_root, name)
    metrics = LocalMetrics(job.metadata.namespace, name, spec.worker_count, baseline, spec.metrics.straggler_threshold)
    executor = LocalExecutor(job, run_root=run_root, console=console, **options,
                             metrics_address=metrics.address, status_hook=metrics.status_line,
                             extra_env=metrics.worker_env)
    metrics.session = executor.run_id
    metrics.start(executor.run_dir)  # Ray starts in the background while the workers start
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
            status.scaling_efficiency = 1.0
            run.baseline_source = "this run"
    return run
