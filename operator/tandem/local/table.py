"""What `tandem run` prints when a run ends: one table a person can read at a glance.

Its figures are those api/status.py FIGURES declares for the "run" view: a column per worker for
each figure a worker holds, and the job's own on the line under the table."""

from __future__ import annotations

from typing import Optional

from rich.console import Console
from rich.table import Table

from ..api.model import TrainingJob
from ..api.recoveries import recovery_text
from ..api.status import ESTIMATED, FIGURES, Figure, MetricsStatus, WorkerMetrics, shown
from ..contract import REASON_DEADLINE_EXCEEDED, REASON_HUNG
from ..metrics.gpu import gpu_text
from .executor import Attempt, RunResult


def straggler_text(metrics: MetricsStatus) -> str:
    """Which worker holds the others back, with its compute rate against its peers' median."""
    capacity = {w.index: w.capacity for w in metrics.per_worker}
    slow = None if metrics.straggler is None else capacity.get(metrics.straggler)
    peers = sorted(c for i, c in capacity.items() if i != metrics.straggler and c is not None)
    text = f"straggler: worker {metrics.straggler}"
    if slow is not None and peers:
        middle = peers[len(peers) // 2] if len(peers) % 2 else (peers[len(peers) // 2 - 1] + peers[len(peers) // 2]) / 2
        text += (f" computes {slow:,.0f} samples/s against {middle:,.0f} for the median of the others"
                 f" ({slow / middle:.0%})")
    return text + "; the others wait for it at every allreduce"


def metrics_lines(metrics: MetricsStatus, baseline_source: str = "") -> list[str]:
    """The job-wide figures under the table (rich markup)."""
    if not metrics.available:
        return [f"[yellow]metrics unavailable{f' ({metrics.reason})' if metrics.reason else ''}[/]"]
    if metrics.throughput is None:
        return ["metrics: no steps were reported"]
    line = "   ".join(f"{figure.label}: [bold]{figure.shown(value)}[/]" for figure, value in shown(metrics, "run"))
    if metrics.scaling_efficiency is not None and metrics.efficiency_basis == "compute-time":
        efficiency = (f"scaling efficiency: [bold]{metrics.scaling_efficiency:.0%}[/] {ESTIMATED}: the workers "
                      f"computed {metrics.scaling_efficiency:.0%} of each step and waited for their peers the rest; "
                      "no one-worker baseline yet (run with --workers 1 once to measure against one)")
    elif metrics.scaling_efficiency is not None and metrics.baseline_throughput is not None:
        efficiency = (f"scaling efficiency: [bold]{metrics.scaling_efficiency:.0%}[/] against "
                      f"{metrics.baseline_throughput:,.1f} samples/s per worker"
                      + (f" ({baseline_source})" if baseline_source else ""))
    else:
        efficiency = "scaling efficiency: - (no one-worker baseline yet: run with --workers 1 once)"
    lines = [line, efficiency]
    if metrics.straggler is not None:
        lines.append(f"[yellow]{straggler_text(metrics)}[/]")
    elif metrics.straggler_check:
        lines.append(f"straggler: none named ({metrics.straggler_check})")
    elif len(metrics.per_worker) > 1:
        lines.append("straggler: none (no worker computes below the straggler threshold of its peers' median)")
    return lines


def worker_columns(workers: list[WorkerMetrics]) -> list[Figure]:
    """The per-worker figures of the "run" view that at least one worker holds."""
    return [f for f in FIGURES if f.per_worker and "run" in f.views and any(f.of(w) is not None for w in workers)]


def attempt_text(attempt: Attempt) -> str:
    """`#1 12.3 s (Error: worker 1 exit 3)`: one attempt's elapsed time and how it ended."""
    failed = attempt.failed
    ended = "" if failed is None else f" ({attempt.reason or 'failed'}: worker {failed.index} exit {failed.code})"
    return f"#{attempt.restart} {attempt.seconds:.1f} s{ended}"


def print_run_summary(console: Console, job: TrainingJob, result: RunResult,
                      metrics: Optional[MetricsStatus] = None, baseline_source: str = "") -> None:
    last = result.attempts[-1] if result.attempts else None
    if result.interrupted:
        verdict = "[yellow]Interrupted[/]"
    elif result.succeeded:
        verdict = "[green]Succeeded[/]"
    else:
        verdict = "[red]Failed[/]"
    table = Table(title=f"{job.metadata.name}: {verdict}", title_justify="left")
    table.add_column("worker", justify="right")
    table.add_column("exit code", justify="right")
    per_worker = {w.index: w for w in metrics.per_worker} if metrics is not None and metrics.available else {}
    columns = worker_columns(list(per_worker.values()))
    for figure in columns:
        table.add_column(figure.unit or figure.label, justify="right")
    gpus = any(w.gpus for w in per_worker.values())
    if gpus:
        table.add_column("GPU use", justify="right")
    table.add_column("log")
    for exit_ in last.exits if last else []:
        style = "red" if exit_.code != 0 else ""
        figures = []
        if per_worker:
            w = per_worker.get(exit_.index)
            values = [None if w is None else figure.of(w) for figure in columns]
            figures = ["-" if value is None else figure.text(value) for figure, value in zip(columns, values, strict=True)]
            if gpus:
                figures.append("-" if w is None else gpu_text(w.gpu_utilization, w.gpu_memory_used, w.gpu_memory_total))
            if metrics is not None and metrics.straggler == exit_.index:
                style = style or "yellow"
        table.add_row(str(exit_.index), str(exit_.code), *figures, str(exit_.log), style=style)
    console.print(table)
    if metrics is not None:
        for line in metrics_lines(metrics, baseline_source):
            console.print(line)
    if result.attempts:
        console.print("attempts: " + "   ".join(attempt_text(a) for a in result.attempts))
    seconds = sum(a.seconds for a in result.attempts)
    in_place = f"   in-place restarts: {result.in_place_restarts}" if result.in_place_restarts else ""
    console.print(f"restarts: {result.restarts}{in_place}   wall time: {seconds:.1f} s   run directory: {result.run_dir}")
    for record in result.recoveries.latest:
        console.print(f"  {recovery_text(record)}")
    if result.elastic is not None:
        console.print(result.elastic.summary())
    if last and last.failed is not None and not result.interrupted:
        what = {REASON_DEADLINE_EXCEEDED: "passed its activeDeadlineSeconds",
                REASON_HUNG: f"went silent first ({REASON_HUNG}: {last.detail})"}.get(
            last.reason, f"exited with code {last.failed.code}")
        console.print(f"[red]worker {last.failed.index} {what}; the job failed after {result.restarts} restarts[/]")
