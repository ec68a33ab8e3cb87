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


# -- a local run's history: the seconds before its figures could first be read -----------------
def steps_from(t0: float, seconds: float, step_s: float = 0.1) -> list[list[float]]:
    """One rank's encoded steps: `samples` 64 each, `step_s` apart, from `t0` for `seconds`."""
    count = int(seconds / step_s)
    return [[t0 + i * step_s, 64, step_s, step_s] for i in range(1, count + 1)]


def test_backfill_gives_the_figures_of_each_second_from_the_records_up_to_then():
    from tandem.figures import reader
    from tandem.figures.history import backfill

    t0 = START.timestamp()
    # Worker 1 starts 3 s late: the early seconds have worker 0's figures only.
    snapshot = {"records": {"0/0": steps_from(t0, 10.0), "1/0": [s for s in steps_from(t0, 10.0) if s[0] > t0 + 3]},
                "info": {"0/0": {"stepsDone": 100, "stepsTotal": 100, "gpus": 1, "gpuUtil": 90.0}}}
    samples = backfill(snapshot, workers=2, baseline=None, straggler_threshold=0.8, interval=1.0)
    moments = [datetime.fromisoformat(s.updated_at.replace("Z", "+00:00")).timestamp() for s in samples]
    assert moments == [t0 + k for k in range(1, 11)]  # from the first step to the last, each whole second
    assert [[w.index for w in s.per_worker] for s in samples[:2]] == [[0], [0]]
    assert [w.index for w in samples[-1].per_worker] == [0, 1]
    # Each is what the figures were then: the records up to that moment, summarised.
    cut = {"0/0": [s for s in snapshot["records"]["0/0"] if s[0] <= moments[4]],
           "1/0": [s for s in snapshot["records"]["1/0"] if s[0] <= moments[4]]}
    then = reader.from_snapshot({"records": cut}, 2, None, 0.8)
    assert samples[4].throughput == then.throughput and samples[4].per_worker[0].steps == len(cut["0/0"])
    # A pause (a group restart): no sample for the seconds in which no step ended.
    paused = {"records": {"0/0": steps_from(t0, 3.0) + steps_from(t0 + 10.0, 3.0)}}
    moments = [datetime.fromisoformat(s.updated_at.replace("Z", "+00:00")).timestamp() - t0
               for s in backfill(paused, workers=1, baseline=None, straggler_threshold=0.8, interval=1.0)]
    assert moments == [1, 2, 3, 11, 12, 13]
    # The latest word of a rank (GPU use, its total) would misdate the past: left out.
    assert all(w.gpu_utilization is None for s in samples for w in s.per_worker)


def test_a_long_gap_is_backfilled_with_at_most_max_backfill_samples():
    from tandem.figures.history import MAX_BACKFILL, backfill

    t0 = START.timestamp()
    snapshot = {"records": {"0/0": steps_from(t0, 3000.0, step_s=5.0)}}  # 50 minutes of records
    samples = backfill(snapshot, workers=1, baseline=None, straggler_threshold=0.8, interval=1.0)
    assert MAX_BACKFILL - 1 <= len(samples) <= MAX_BACKFILL and samples[-1].throughput == 12.8
    assert backfill({"records": {}}, workers=1, baseline=None, straggler_threshold=0.8, interval=1.0) == []


def test_a_run_shorter_than_rays_start_gets_its_chart_from_the_spool_once(tmp_path, monkeypatch):
    """The history a local run keeps (local/figures_service.SampleHistory): the file exists at once,
    the first figures come after the seconds before them, and a second writer of the same history
    (the CLI, when the helper was stopped) adds no second backfill."""
    from tandem.dashboard.series import parse_history
    from tandem.local.figures_service import SampleHistory

    path = tmp_path / "metrics.jsonl"
    t0 = START.timestamp()
    snapshot = {"records": {"0/0": steps_from(t0, 8.0), "1/0": steps_from(t0, 8.0)}}
    with SampleHistory(path, 2, None, 0.8, 1.0) as history:
        assert path.exists()
        waiting = history.sample(lambda final: {}, ray_up=False)
        assert not waiting.available and waiting.reason == "Ray did not start"
        final = history.sample(lambda final: snapshot, ray_up=False, final=True)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    samples = parse_history(path.read_text().splitlines())
    assert lines[-1]["final"] is True and final.throughput == samples[-1].throughput
    assert len([s for s in samples if s.throughput is not None]) == 1 + 8  # the final and one a second before it
    with SampleHistory(path, 2, None, 0.8, 1.0) as again:
        assert again.figures_written
        again.sample(lambda final: snapshot, ray_up=False, final=True)
    assert len(path.read_text().splitlines()) == len(lines) + 1


def test_a_helper_stopped_before_its_final_figures_leaves_them_to_the_cli(tmp_path, monkeypatch):
    """The helper can be killed while it connects to a Ray that came up as the run ended (the CLI
    waits for it only so long); the shippers spooled everything, so `tandem run` writes the final
    figures itself. With nothing spooled it writes nothing and says the helper ended early."""
    from tandem.local.figures_service import LocalMetrics
    from tandem.metrics.shipper import spool

    t0 = START.timestamp()
    metrics = LocalMetrics("default", "j", 1, None, 0.8)
    metrics.history = tmp_path / "metrics.jsonl"
    (tmp_path / "metrics").mkdir()
    assert metrics.stop().reason == "the metrics process ended early" and not metrics.history.exists()

    monkeypatch.setenv("TANDEM_RUN_DIR", str(tmp_path))
    spool(steps_from(t0, 5.0), worker=0, rank=0)
    metrics = LocalMetrics("default", "j", 1, None, 0.8)
    metrics.history = tmp_path / "metrics.jsonl"
    final = metrics.stop()
    lines = [json.loads(line) for line in metrics.history.read_text().splitlines()]
    assert final.available and round(final.throughput) == 640 and lines[-1]["final"] is True
    assert len(lines) == 1 + 5  # the final, after a sample for each second of the run


def test_a_helper_that_hung_on_a_dead_ray_leaves_no_partial_figures(tmp_path, monkeypatch):
    """Ray died mid-run: the helper hangs in a call to it and is stopped. The shippers Ray had
    answered spooled nothing, the others did; figures from that spool would be some workers'
    throughput passed off as the job's, so the final figures say why they are unavailable."""
    from tandem.local.figures_service import RAY_STOPPED, LocalMetrics, RayStopped, SampleHistory
    from tandem.metrics.shipper import spool

    monkeypatch.setenv("TANDEM_RUN_DIR", str(tmp_path))
    spool(steps_from(START.timestamp(), 5.0), worker=1, rank=0)
    metrics = LocalMetrics("default", "j", 2, None, 0.8)
    metrics.history = tmp_path / "metrics.jsonl"
    with SampleHistory(metrics.history, 2, None, 0.8, 1.0) as helper:  # as the helper read worker 0 from Ray
        assert helper.sample(lambda final: {"records": {"0/0": steps_from(START.timestamp(), 5.0)}},
                             ray_up=True).throughput is not None
    final = metrics.stop()
    assert not final.available and final.reason == RAY_STOPPED
    assert json.loads(metrics.history.read_text().splitlines()[-1])["final"] is True

    def dead(final: bool) -> dict:
        raise RayStopped()

    with SampleHistory(tmp_path / "helper.jsonl", 2, None, 0.8, 1.0) as history:
        assert history.sample(dead, ray_up=True, final=True).reason == RAY_STOPPED
