"""How a TrainingJob on the cluster looks on a terminal: its status table and its live line."""

from __future__ import annotations

from typing import Optional

from rich.table import Table

from ..api.status import TrainingJobStatus
from ..figures.progress import duration, progress_text
from ..metrics.gpu import gpu_text

PHASE_STYLES = {"Succeeded": "green", "Failed": "red", "Invalid": "red", "Running": "cyan",
                "Restarting": "yellow", "Suspended": "yellow", "Pending": "white"}


def fmt(value: Optional[float], digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def status_table(name: str, status: TrainingJobStatus) -> Table:
    """The figures a person wants of a job: phase, workers, restarts, throughput, efficiency."""
    table = Table(title=f"{name}: [{PHASE_STYLES.get(status.phase or '', 'white')}]{status.phase or 'Unknown'}[/]",
                  title_justify="left", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    w = status.workers
    table.add_row("workers", f"{w.active} active, {w.ready} ready, {w.succeeded} succeeded, {w.failed} failed")
    table.add_row("restarts", str(status.restarts))
    p = status.progress
    if p is not None:
        table.add_row("progress", progress_text(p) or f"step {p.steps_done if p.steps_done is not None else p.last_step}"
                      " (no total reported)")
        table.add_row(f"attempt {p.restart} elapsed", duration(p.elapsed))
    m = status.metrics
    if m is not None and m.available:
        table.add_row("throughput", f"{fmt(m.throughput)} samples/s")
        table.add_row("scaling efficiency", fmt(m.scaling_efficiency, 2))
        table.add_row("step time p50 / p95", f"{fmt(m.step_time_p50, 3)} / {fmt(m.step_time_p95, 3)} s")
        table.add_row("straggler", "-" if m.straggler is None else f"worker {m.straggler}")
        gpus = [f"worker {w.index}: {gpu_text(w.gpu_utilization, w.gpu_memory_used, w.gpu_memory_total)}"
                for w in m.per_worker if w.gpus]
        if gpus:
            table.add_row("GPU use", "\n".join(gpus))
    elif m is not None:
        table.add_row("metrics", "unavailable")
    for condition in status.conditions:
        if condition.status == "True":
            table.add_row(condition.type, f"{condition.reason}: {condition.message}")
    return table


def progress_line(name: str, status: TrainingJobStatus) -> str:
    """One line while following a job: phase, active workers, restarts and, once known, figures."""
    m = status.metrics
    figures = f"  {fmt(m.throughput)} samples/s  efficiency {fmt(m.scaling_efficiency, 2)}" if m and m.available else ""
    done = progress_text(status.progress)
    return (f"● {name}  {status.phase or 'Pending'}  workers {status.workers.active} active  "
            f"restarts {status.restarts}{f'  {done}' if done else ''}{figures}")
