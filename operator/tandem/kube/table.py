"""How TrainingJobs on the cluster look on a terminal: a job's status table, its live line, and
the list of jobs. The figures shown are those api/status.py FIGURES declares for each view."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Mapping, Optional, Sequence

from rich.table import Table

from ..api.columns import PRINTER_COLUMNS, PrinterColumn
from ..api.recoveries import recovery_text
from ..api.status import TrainingJobStatus, duration, figure_text, parse_time, shown
from ..figures.progress import progress_text
from ..metrics.gpu import gpu_text

PHASE_STYLES = {"Succeeded": "green", "Failed": "red", "Invalid": "red", "Running": "cyan",
                "Restarting": "yellow", "Suspended": "yellow", "Pending": "white"}


def status_table(name: str, status: TrainingJobStatus) -> Table:
    """The figures a person wants of a job: phase, workers, restarts, progress and the job's figures."""
    table = Table(title=f"{name}: [{PHASE_STYLES.get(status.phase or '', 'white')}]{status.phase or 'Unknown'}[/]",
                  title_justify="left", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    w = status.workers
    table.add_row("workers", f"{w.active} active, {w.ready} ready, {w.succeeded} succeeded, {w.failed} failed")
    table.add_row("restarts", f"{status.restarts} of the group, {status.in_place_restarts} in place")
    if status.recoveries:
        table.add_row("recoveries", "\n".join(recovery_text(r) for r in status.recoveries))
    p = status.progress
    if p is not None:
        table.add_row("progress", progress_text(p) or f"step {p.steps_done if p.steps_done is not None else p.last_step}"
                      " (no total reported)")
        table.add_row(f"attempt {p.restart} elapsed", duration(p.elapsed))
    m = status.metrics
    if m is not None and m.available:
        for figure, _ in shown(m, "get"):
            table.add_row(figure.label, figure_text(figure, m))
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
    figures = "".join(f"  {f.phrase(v)}" for f, v in shown(m, "live")) if m and m.available else ""
    done = progress_text(status.progress)
    return (f"● {name}  {status.phase or 'Pending'}  workers {status.workers.active} active  "
            f"restarts {status.restarts}{f'  in place {status.in_place_restarts}' if status.in_place_restarts else ''}"
            f"{f'  {done}' if done else ''}{figures}")


def age(timestamp: Any, now: datetime) -> str:
    """`45s`, `12m`, `5h`, `3d`: how long ago, as kubectl's AGE column says it."""
    started = parse_time(timestamp) if isinstance(timestamp, str) else None
    if started is None:
        return "<unknown>"
    seconds = max(0, int((now - started).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def cell(column: PrinterColumn, document: Mapping[str, Any], now: datetime) -> str:
    value = column.value(document)
    if value is None:
        return ""
    return age(value, now) if column.type == "date" else column.text(value)


def list_table(documents: Sequence[Mapping[str, Any]], all_namespaces: bool = False,
               now: Optional[datetime] = None) -> Table:
    """TrainingJobs (as the API server stores them) with the columns `kubectl get tj` shows."""
    now = now or datetime.now(timezone.utc)
    columns = [c for c in PRINTER_COLUMNS if not c.priority]
    table = Table(box=None)
    for header in (["NAMESPACE"] if all_namespaces else []) + ["NAME"] + [c.name.upper() for c in columns]:
        table.add_column(header)
    for document in documents:
        metadata = document.get("metadata") or {}
        names = ([str(metadata.get("namespace", ""))] if all_namespaces else []) + [str(metadata.get("name", ""))]
        table.add_row(*names, *(cell(c, document, now) for c in columns))
    return table
