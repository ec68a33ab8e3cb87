"""status.metricsHistory: the job's figures over time, bounded and downsampled (figures/history.py),
and the operator's metrics step that keeps it (controller/policy/metrics.py)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from hypothesis import given, settings, strategies as st

from tandem.api.status import MAX_HISTORY_POINTS, MAX_HISTORY_WORKERS, MetricsStatus, WorkerMetrics
from tandem.controller.policy.metrics import with_metrics
from tandem.dashboard.series import from_history
from tandem.figures.history import FIRST_SPACING_SECONDS, recorded

START = datetime(2026, 12, 7, 12, 0, 0, tzinfo=timezone.utc)


def figures(throughput: float, workers: int = 2, efficiency: float | None = 0.9) -> MetricsStatus:
    return MetricsStatus(throughput=throughput, scaling_efficiency=efficiency,
                         per_worker=[WorkerMetrics(index=i, throughput=throughput / workers) for i in range(workers)])


def test_a_point_is_kept_per_spacing_not_per_read():
    history = recorded(None, figures(100.0), START)
    assert history is not None and [p.t for p in history.points] == [int(START.timestamp())]
    assert recorded(history, figures(110.0), START + timedelta(seconds=5)) is None  # too soon: unchanged
    later = recorded(history, figures(120.0), START + timedelta(seconds=FIRST_SPACING_SECONDS))
    assert later is not None and [p.throughput for p in later.points] == [100.0, 120.0]
    assert later.points[-1].workers == [60.0, 60.0] and later.worker_indexes == [0, 1]


def test_unavailable_figures_add_no_point():
    assert recorded(None, MetricsStatus(available=False, reason="outage"), START) is None


@given(st.integers(1, 3000))
@settings(max_examples=30, deadline=None)
def test_however_long_the_job_the_history_is_bounded_and_spans_it_from_the_start(reads):
    history = None
    for i in range(reads):
        history = recorded(history, figures(float(i + 1)), START + timedelta(seconds=FIRST_SPACING_SECONDS * i)) or history
    assert history is not None and 1 <= len(history.points) <= MAX_HISTORY_POINTS
    times = [p.t for p in history.points]
    assert times == sorted(times) and times[-1] <= int(START.timestamp()) + FIRST_SPACING_SECONDS * (reads - 1)
    # merged points are means, so the first point never starts later than the first merged pair
    assert times[0] <= int(START.timestamp()) + history.spacing
    assert len(json.dumps(history.model_dump(by_alias=True, exclude_none=True, mode="json"))) < 16_000


def test_merging_takes_the_mean_and_doubles_the_spacing():
    history = None
    for i in range(5):
        history = recorded(history, figures(float(10 * (i + 1))), START + timedelta(seconds=15 * i), limit=4) or history
    assert history is not None and history.spacing == 2 * FIRST_SPACING_SECONDS
    assert [p.throughput for p in history.points] == [15.0, 35.0, 50.0]


def test_only_the_first_workers_lines_are_kept():
    history = recorded(None, figures(1000.0, workers=50), START)
    assert history is not None and history.worker_indexes == list(range(MAX_HISTORY_WORKERS))
    assert len(history.points[0].workers) == MAX_HISTORY_WORKERS


def test_the_operators_reads_keep_the_history_in_status_and_the_dashboard_charts_it():
    status: dict = {"phase": "Running"}
    for i in range(3):
        read = figures(100.0 + i).model_dump(by_alias=True, exclude_none=True, mode="json")
        status = with_metrics(status, read, START + timedelta(seconds=15 * i), generation=1)
    kept = status["metricsHistory"]
    assert [p["throughput"] for p in kept["points"]] == [100.0, 101.0, 102.0]
    from tandem.api.status import TrainingJobStatus

    drawn = from_history(TrainingJobStatus.model_validate(status).metrics_history)
    assert drawn.throughput == [100.0, 101.0, 102.0] and drawn.workers[1]["throughput"] == [50.0, 50.5, 51.0]
    assert drawn.workers[1]["gpu_utilization"] == [None, None, None]
