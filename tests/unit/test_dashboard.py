"""`tandem dashboard`: its rows, charts and timeline from a job's document (pure), and its server
over real HTTP on loopback against a runs directory laid out as `tandem run` leaves one."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import aiohttp
import pytest

from tandem.api.model import TrainingJob
from tandem.api.status import (
    FailureStatus,
    MetricsStatus,
    ProgressStatus,
    RecoveryStatus,
    TrainingJobStatus,
    WorkerMetrics,
    rfc3339,
)
from tandem.dashboard import series as charts
from tandem.dashboard.rows import STOPPED, JobDocument, JobRef, row, rows
from tandem.dashboard.server import Dashboard, local_host, make_app, start
from tandem.dashboard.sources import LocalRuns, tail
from tandem.dashboard.timeline import events
from tandem.figures.progress import done
from tandem.kube.table import status_table
from tandem.local import record

NOW = datetime(2026, 12, 7, 12, 0, 0, tzinfo=timezone.utc)
JOB = TrainingJob.from_dict({
    "apiVersion": "tandem.dev/v1alpha1", "kind": "TrainingJob", "metadata": {"name": "mnist-ddp"},
    "spec": {"framework": "pytorch", "strategy": "ddp", "command": ["python", "train.py"], "workers": 2}})


def figures(at: datetime, throughput: float = 250.0, straggler: int | None = 1) -> MetricsStatus:
    return MetricsStatus(
        throughput=throughput, scaling_efficiency=0.93, straggler=straggler, updated_at=rfc3339(at),
        step_time_p50=0.0125,
        per_worker=[WorkerMetrics(index=0, throughput=throughput * 0.6, steps=300, steps_done=300, steps_total=600,
                                  step_rate=10.0, step_time_p50=0.01),
                    WorkerMetrics(index=1, throughput=throughput * 0.4, steps=290, steps_done=290, steps_total=600,
                                  step_rate=9.5, step_time_p50=0.015)])


def finished(phase: str = "Succeeded") -> TrainingJobStatus:
    failure = RecoveryStatus(worker=1, exit_code=137, reason="SIGKILL", recovered="InPlace", seconds=1.5,
                             restart=0, round=1, time=rfc3339(NOW - timedelta(minutes=3)))
    status = TrainingJobStatus(phase=phase, start_time=rfc3339(NOW - timedelta(minutes=5)),
                               completion_time=rfc3339(NOW - timedelta(minutes=1)), in_place_restarts=1,
                               recoveries=[failure], metrics=figures(NOW - timedelta(minutes=1)))
    status.progress = ProgressStatus(**done(status.metrics.per_worker))  # as local_status sets it
    if phase == "Failed":
        status.last_failure = FailureStatus(worker=0, exit_code=3, reason="Error", action="FailJob", rule=0,
                                            time=rfc3339(NOW - timedelta(minutes=1)))
    return status


def local_job(status: TrainingJobStatus, alive: bool = False, latest: MetricsStatus | None = None,
              run: str = "20261207-115500-000001") -> JobDocument:
    document = record.document(JOB, status)
    return JobDocument(JobRef("local", "default", "mnist-ddp", run), document, alive, latest)


# --- rows: the words of `tandem get` ------------------------------------------------------------
def test_a_row_shows_the_figures_in_the_words_tandem_get_prints():
    status = finished()
    made = row(local_job(status), NOW)
    printed = " ".join(str(cell) for cells in status_table("mnist-ddp", status).columns for cell in cells._cells)
    assert made.throughput == "250.0 samples/s" and made.throughput in printed
    assert made.efficiency == "93%" and made.efficiency in printed
    assert made.straggler == "worker 1" and "worker 1" in printed
    assert (made.phase, made.workers, made.restarts) == ("Succeeded", "2", "0 + 1 in place")
    assert made.progress == "step 290/600 (48%)" and made.age == "5m"


def test_a_running_local_run_shows_its_latest_figures_and_a_dead_one_is_stopped():
    started = TrainingJobStatus(phase="Running", start_time=rfc3339(NOW - timedelta(seconds=30)), desired_workers=2)
    live = row(local_job(started, alive=True, latest=figures(NOW, throughput=100.0, straggler=None)), NOW)
    assert live.phase == "Running" and live.throughput == "100.0 samples/s" and live.straggler == "none"
    assert live.eta == "0:33"  # 310 steps left at the slower worker's 9.5 steps/s: 32.6 s
    dead = row(local_job(started, alive=False), NOW)
    assert dead.phase == STOPPED and dead.throughput == "-"


def test_rows_are_newest_first_and_filtered_by_namespace_and_phase():
    older = local_job(finished(), run="20261207-110000-000001")
    newer = JobDocument(JobRef("cluster", "team-a", "big"), {
        "metadata": {"name": "big", "namespace": "team-a", "creationTimestamp": rfc3339(NOW)},
        "spec": {"framework": "tensorflow", "workers": 4, "minWorkers": 2, "maxWorkers": 8},
        "status": {"phase": "Running", "worldSize": 3, "desiredWorkers": 4}})
    made = rows([older, newer], NOW)
    assert [r.ref.name for r in made] == ["big", "mnist-ddp"]
    assert made[0].workers == "4 (2-8), world 3"
    assert [r.ref.name for r in rows([older, newer], NOW, namespace="team-a")] == ["big"]
    assert [r.ref.name for r in rows([older, newer], NOW, phase="Succeeded")] == ["mnist-ddp"]


def test_unavailable_figures_say_why_instead_of_a_number():
    status = TrainingJobStatus(phase="Running", metrics=MetricsStatus(available=False, reason="Ray did not start"))
    made = row(JobDocument(JobRef("cluster", "a", "b"), {"metadata": {}, "status": status.model_dump(by_alias=True)}),
               NOW)
    assert (made.throughput, made.straggler, made.straggler_note) == ("-", "-", "Ray did not start")


# --- charts -----------------------------------------------------------------------------------
def test_a_chart_gets_at_most_its_limit_of_points_the_newest_kept():
    assert charts.thin(10, 400) == list(range(10))
    kept = charts.thin(86_400, 400)
    assert len(kept) <= 400 and kept[0] == 0 and kept[-1] == 86_399
    samples = [figures(NOW + timedelta(seconds=i), throughput=float(i + 1)) for i in range(1000)]
    drawn = charts.series(samples, limit=50)
    assert len(drawn.t) <= 50 and drawn.throughput[-1] == 1000.0
    assert set(drawn.workers) == {0, 1} and all(len(v) == len(drawn.t) for v in drawn.workers[0].values())


def test_samples_without_figures_are_gaps_and_a_missing_worker_is_none():
    one_worker = figures(NOW + timedelta(seconds=2))
    one_worker.per_worker = one_worker.per_worker[:1]
    samples = [figures(NOW), MetricsStatus(available=False, reason="outage", updated_at=rfc3339(NOW)), one_worker]
    drawn = charts.series(samples)
    assert drawn.t == [NOW.timestamp(), NOW.timestamp() + 2]
    assert drawn.workers[1]["throughput"] == [100.0, None]
    words = {line.label: line for line in charts.summary(drawn)}
    assert words["worker 1 throughput"].points == 1 and words["job throughput"].last == 250.0
    assert "worker 0 GPU use" not in words  # never measured: no line, no words


def test_a_history_line_cut_short_is_skipped():
    lines = [json.dumps(figures(NOW).model_dump(mode="json", by_alias=True, exclude_none=True)), '{"throughput": 1']
    assert len(charts.parse_history(lines)) == 1


# --- timeline ---------------------------------------------------------------------------------
def test_the_timeline_tells_each_failure_how_it_was_recovered_and_the_end():
    told = events(finished("Failed"), "Failed")
    assert [e.kind for e in told] == ["start", "failure", "failure", "end"]
    assert told[1].recovered == "InPlace" and "worker 1 rank" not in told[1].text and "exit 137" in told[1].text
    assert told[2].text == "worker 0 failed with exit code 3 (Error): FailJob, rule 0"


# --- the server, over HTTP on loopback --------------------------------------------------------
@pytest.fixture
def runs(tmp_path: Path) -> Path:
    """A runs directory as `tandem run` leaves it: a finished run with its record, history and
    logs, and a run from before records whose `tandem run` is gone."""
    run_dir = tmp_path / "runs" / "mnist-ddp" / "20261207-115500-000001"
    (run_dir / "logs" / "attempt-0").mkdir(parents=True)
    record.write(run_dir, JOB, finished())
    with (run_dir / "metrics.jsonl").open("w") as history:
        for i in range(30):
            sample = figures(NOW - timedelta(seconds=60 - i), throughput=200.0 + i)
            history.write(json.dumps(sample.model_dump(mode="json", by_alias=True, exclude_none=True)) + "\n")
    for worker in (0, 1):
        (run_dir / "logs" / "attempt-0" / f"worker-{worker}.log").write_text(
            "".join(f"worker {worker} line {n}\n" for n in range(100)))
    (tmp_path / "runs" / "old-job" / "20261101-080000-000001").mkdir(parents=True)
    sweep = {"job": "mnist-ddp", "baseline": 1000.0, "baselineSource": "the 1-worker run of this sweep", "points": [
        {"workers": 1, "succeeded": True, "throughput": 1000.0, "per_worker": 1000.0, "efficiency": 1.0,
         "step_p50": 0.004, "step_p95": 0.005, "straggler": None, "wall_seconds": 9.0, "run_dir": "x"},
        {"workers": 2, "succeeded": True, "throughput": 1700.0, "per_worker": 850.0, "efficiency": 0.85,
         "step_p50": 0.005, "step_p95": 0.006, "straggler": 1, "wall_seconds": 9.0, "run_dir": "y"}]}
    (tmp_path / "runs" / "mnist-ddp" / "bench-20261207-115900.json").write_text(json.dumps(sweep))
    (tmp_path / "runs" / "mnist-ddp" / "bench-20261207-115900.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (tmp_path / "runs" / "mnist-ddp" / "baseline.json").write_text("{}")
    return tmp_path / "runs"


def fetch(runs: Path, *paths: str, host: str = "") -> list[tuple[int, dict[str, str], str]]:
    """GET each path from a real dashboard server on a free loopback port."""

    async def go() -> list[tuple[int, dict[str, str], str]]:
        runner, port = await start(make_app(Dashboard(LocalRuns(runs), no_cluster="test")), 0)
        try:
            async with aiohttp.ClientSession() as session:
                got = []
                for path in paths:
                    headers = {"Host": host} if host else {}
                    async with session.get(f"http://127.0.0.1:{port}{path}", headers=headers) as response:
                        got.append((response.status, dict(response.headers),
                                    (await response.read()).decode("utf-8", "replace")))
                return got
        finally:
            await runner.cleanup()

    return asyncio.run(go())


def test_the_jobs_page_is_html_with_every_local_run_and_its_figures(runs: Path):
    [(code, headers, page)] = fetch(runs, "/")
    assert code == 200 and headers["Content-Type"].startswith("text/html")
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert 'href="/jobs/local/mnist-ddp/20261207-115500-000001"' in page
    assert "229.0 samples/s" not in page and "250.0 samples/s" in page  # the record's final figures
    assert "old-job" in page and STOPPED in page
    assert "baseline.json" not in page


def test_the_job_page_has_its_figures_timeline_logs_and_chart_data(runs: Path):
    base = "/jobs/local/mnist-ddp/20261207-115500-000001"
    (code, _, page), (_, headers, raw), (live_code, _, live), (logs_code, _, logs) = fetch(
        runs, base, base + "/series.json", base + "/live", base + "/logs")
    assert code == 200 and live_code == 200 and logs_code == 200
    assert "recovered in place in 1.5 s" in page and "worker 1 line 99" in page and "worker 1 line 59" not in page
    assert "job throughput (samples/s)" in page  # the charts' text alternative
    data = json.loads(raw)
    assert headers["Content-Type"].startswith("application/json")
    assert len(data["t"]) == 30 and data["workers"]["1"]["throughput"][-1] == pytest.approx(229.0 * 0.4)
    assert "<html" not in live and "recovered in place" in live
    assert "<html" not in logs and "worker 0 line 99" in logs


def test_a_bench_sweep_is_listed_with_its_table_and_plot(runs: Path):
    (_, _, jobs), (code, _, page), (plot_code, headers, _), (gone, _, _) = fetch(
        runs, "/", "/sweeps/mnist-ddp/20261207-115900", "/sweeps/mnist-ddp/20261207-115900.png",
        "/sweeps/mnist-ddp/20261207-000000")
    assert 'href="/sweeps/mnist-ddp/20261207-115900"' in jobs
    assert "1, 2 workers: 1,000.0 samples/s to 1,700.0 samples/s, efficiency 85% at 2" in jobs
    assert code == 200 and "850.0 samples/s" in page and "worker 1" in page and 'alt="The sweep' in page
    assert plot_code == 200 and headers["Content-Type"] == "image/png" and gone == 404


def test_unknown_jobs_and_paths_out_of_the_runs_directory_are_not_found(runs: Path):
    (runs.parent / "20261207-115500-000001").mkdir()  # a run-named directory just outside the runs directory
    answers = fetch(runs, "/jobs/local/mnist-ddp/nope", "/jobs/local/..%2F..%2Fetc/20261207-115500-000001",
                    "/jobs/local/%2E%2E/20261207-115500-000001", "/jobs/cluster/default/x", "/jobs/elsewhere/a/b")
    assert [code for code, _, _ in answers] == [404, 404, 404, 404, 404]
    local = LocalRuns(runs)  # below the router, whatever it makes of an encoded dot
    assert local.find("..", "20261207-115500-000001") is None and local.find(".", "20261207-115500-000001") is None
    assert local.find("mnist-ddp", "20261207-115500-000001") is not None


def test_a_request_addressed_to_another_name_is_refused(runs: Path):
    [(code, _, text)] = fetch(runs, "/", host="attacker.example:8377")
    assert code == 421 and "localhost" in text
    assert local_host("127.0.0.1:8377") and local_host("localhost") and local_host("[::1]:80")
    assert not local_host("127.0.0.1.attacker.example") and not local_host("")


def test_a_log_tail_reads_only_the_end_of_a_big_file(tmp_path: Path):
    log = tmp_path / "w.log"
    log.write_text("".join(f"line {n}\n" for n in range(200_000)))
    assert tail(log, 3) == ["line 199997", "line 199998", "line 199999"]
    assert tail(tmp_path / "missing.log", 3) == []


def test_a_run_writes_its_record_as_running_then_as_it_ended(tmp_path: Path):
    record.write(tmp_path, JOB, TrainingJobStatus(phase="Running", start_time=rfc3339(NOW)))
    first = record.read(tmp_path)
    assert first is not None and first["status"]["phase"] == "Running" and first["kind"] == "TrainingJob"
    assert first["metadata"]["creationTimestamp"] == rfc3339(NOW) and first["spec"]["workers"] == 2
    record.write(tmp_path, JOB, finished())
    assert (record.read(tmp_path) or {})["status"]["phase"] == "Succeeded"
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]  # no temporary file left
