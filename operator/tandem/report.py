"""What `tandem run` prints when a run ends: one table a person can read at a glance."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from .api.model import TrainingJob
from .backends.local import RunResult


def print_run_summary(console: Console, job: TrainingJob, result: RunResult) -> None:
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
    table.add_column("log")
    for exit_ in last.exits if last else []:
        style = "red" if exit_.code != 0 else ""
        table.add_row(str(exit_.index), str(exit_.code), str(exit_.log), style=style)
    console.print(table)
    seconds = sum(a.seconds for a in result.attempts)
    console.print(f"restarts: {result.restarts}   wall time: {seconds:.1f} s   run directory: {result.run_dir}")
    if last and last.failed is not None and not result.interrupted:
        what = "passed its activeDeadlineSeconds" if last.reason == "deadline" else f"exited with code {last.failed.code}"
        console.print(f"[red]worker {last.failed.index} {what}; the job failed after {result.restarts} restarts[/]")
