"""What `tandem run` and `tandem get` print of the figures beside throughput: GPU use per worker, elapsed
time per attempt, progress and ETA, and why no straggler was named (rendered, not mocked)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console

from tandem.api.columns import PRINTER_COLUMNS
from tandem.api.model import load_job
from tandem.api.status import FIGURES, MetricsStatus, ProgressStatus, TrainingJobStatus, WorkerMetrics
from tandem.kube.table import list_table, progress_line, status_table
from tandem.local.executor import Attempt, RunResult, WorkerExit
from tandem.local.figures_service import LocalMetrics
from tandem.local.table import print_run_summary
from tests.support.columns import headers, table_rows

REPO = Path(__file__).resolve().parents[2]
GIB = 1 << 30


def rendered(*things) -> str:
    console = Console(width=200, record=True, color_system=None)
    for thing in things:
        console.print(thing)
    return console.export_text()


def test_the_run_table_shows_gpu_use_and_each_attempts_time(tmp_path):
    job = load_job(REPO / "jobs/mnist-ddp.yaml")
    logs = [tmp_path / "w0.log", tmp_path / "w1.log"]
    result = RunResult("mnist-ddp", tmp_path, [
        Attempt(0, [WorkerExit(0, 1, logs[0]), WorkerExit(1, 3, logs[1])], 12.34, WorkerExit(1, 3, logs[1]), "Error"),
        Attempt(1, [WorkerExit(0, 0, logs[0]), WorkerExit(1, 0, logs[1])], 20.0),
    ])
    metrics = MetricsStatus(throughput=200.0, per_worker=[
        WorkerMetrics(index=0, throughput=100.0, gpus=1, gpu_utilization=87.0, gpu_memory_used=3 * GIB,
                      gpu_memory_total=80 * GIB),
        WorkerMetrics(index=1, throughput=100.0),
    ], straggler_check="too little data: 12 steps over 0.1 s")
    console = Console(width=200, record=True, color_system=None)
    print_run_summary(console, job, result, metrics)
    text = console.export_text()
    assert "GPU use" in text and "87% 3.0/80.0 GiB" in text
    assert "#0 12.3 s (Error: worker 1 exit 3)" in text and "#1 20.0 s" in text
    assert "straggler: none named (too little data" in text


def test_the_run_table_has_no_gpu_column_without_gpu_figures(tmp_path):
    job = load_job(REPO / "jobs/mnist-ddp.yaml")
    result = RunResult("mnist-ddp", tmp_path, [Attempt(0, [WorkerExit(0, 0, tmp_path / "w0.log")], 1.0)])
    console = Console(width=200, record=True, color_system=None)
    print_run_summary(console, job, result, MetricsStatus(throughput=1.0, per_worker=[WorkerMetrics(index=0, throughput=1.0)]))
    assert "GPU" not in console.export_text()


def test_tandem_get_shows_progress_eta_elapsed_and_gpu_use():
    status = TrainingJobStatus(
        phase="Running", restarts=1,
        progress=ProgressStatus(restart=1, steps_done=120, steps_total=400, percent=30.0, eta=65, elapsed=3725),
        metrics=MetricsStatus(throughput=10.0, per_worker=[WorkerMetrics(index=0, throughput=10.0, gpus=2,
                                                                         gpu_utilization=50.0)]),
    )
    text = rendered(status_table("demo", status))
    assert "step 120/400 (30%) ETA 1:05" in text
    assert "attempt 1 elapsed" in text and "1:02:05" in text
    assert "worker 0: 50%" in text
    assert "step 120/400 (30%) ETA 1:05" in progress_line("demo", status)
    untold = status.model_copy(update={"progress": ProgressStatus(restart=1, last_step=7, steps_done=7)})
    assert "step 7 (no total reported)" in rendered(status_table("demo", untold))


# --- every view draws the figures api/status.py FIGURES declares for it -----------------------------
def _every_figure() -> MetricsStatus:
    """Figures with a value in every declared field, each one distinct, so a view that shows a
    figure shows its own value."""
    values = {f.field: 1.5 + i for i, f in enumerate(FIGURES)}
    worker = WorkerMetrics(index=0, **{f.field: values[f.field] for f in FIGURES if f.per_worker})
    return MetricsStatus(per_worker=[worker], baseline_throughput=1.0, **values)


def test_the_run_table_has_a_column_and_a_job_figure_for_each_run_figure(tmp_path):
    job = load_job(REPO / "jobs/mnist-ddp.yaml")
    result = RunResult("mnist-ddp", tmp_path, [Attempt(0, [WorkerExit(0, 0, tmp_path / "w0.log")], 1.0)])
    metrics = _every_figure()
    console = Console(width=300, record=True, color_system=None)
    print_run_summary(console, job, result, metrics)
    text = console.export_text()
    head = next(line for line in text.splitlines() if line.startswith("┃"))
    row = next(line for line in text.splitlines() if line.startswith("│"))
    cells = dict(zip((c.strip() for c in head.split("┃")[1:-1]), (c.strip() for c in row.split("│")[1:-1]), strict=True))
    after = text[text.index("└"):]
    for figure in FIGURES:
        if "run" in figure.views and figure.per_worker:
            assert cells[figure.unit or figure.label] == figure.text(figure.of(metrics.per_worker[0]))
        if "run" in figure.views:
            assert f"{figure.label}: {figure.shown(figure.of(metrics))}" in after


def test_tandem_get_and_the_live_lines_show_their_figures():
    metrics = _every_figure()
    text = rendered(status_table("demo", TrainingJobStatus(phase="Running", metrics=metrics)))
    live = progress_line("demo", TrainingJobStatus(phase="Running", metrics=metrics))
    local = LocalMetrics("default", "demo", 1, None, 0.8)
    local.latest = metrics
    for figure in FIGURES:
        value = figure.of(metrics)
        assert (figure.shown(value) in text) == ("get" in figure.views), figure
        assert (figure.phrase(value) in live) == ("live" in figure.views), figure
        assert (figure.phrase(value) in local.status_line()) == ("live" in figure.views), figure


def test_tandem_list_has_the_printer_columns_by_name():
    document = {"metadata": {"name": "demo", "namespace": "ml", "creationTimestamp": "2026-01-01T00:00:00Z"},
                "spec": {"framework": "pytorch", "workers": 2},
                "status": {"phase": "Running", "restarts": 1, "inPlaceRestarts": 3, "metrics": {"throughput": 1280.0},
                           "progress": {"percent": 30.0, "eta": 65}}}
    now = datetime(2026, 1, 1, 0, 5, tzinfo=timezone.utc)
    text = rendered(list_table([document], all_namespaces=True, now=now))
    assert headers(text) == ["NAMESPACE", "NAME", *(c.name.upper() for c in PRINTER_COLUMNS if not c.priority)]
    (row,) = table_rows(text)
    assert row == {"NAMESPACE": "ml", "NAME": "demo", "FRAMEWORK": "pytorch", "WORKERS": "2", "PHASE": "Running",
                   "RESTARTS": "1", "INPLACE": "3", "THROUGHPUT": "1,280.0", "EFFICIENCY": "", "PROGRESS": "30%",
                   "ETA": "1:05", "AGE": "5m"}
