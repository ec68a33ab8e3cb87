"""Metrics end to end: real `tandem run`, real worker processes, a real local Ray."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import REPO
from tests.support.commands import machine_with_gpus, run_args, run_tandem, start_tandem
from tests.support.processes import kill, processes_of_job, ray_pids_listed, ray_session_of, wait_gone
from tests.support.waiting import wait_for

pytestmark = pytest.mark.local

DONE = re.compile(r"done: (\d+) steps in ([0-9.]+)s, (\d+) ranks")
BATCH = 64


def command(*extra: str) -> str:
    args = ["python", "jobs/train_ddp.py", "--checkpoint-every", "0", "--log-every", "50", *extra]
    return "spec.command=" + json.dumps(args)




def history(tmp_path, job) -> list[dict]:
    files = list((tmp_path / "runs" / job).glob("*/metrics.jsonl"))
    assert len(files) == 1, files
    return [json.loads(line) for line in files[0].read_text().splitlines() if line.strip()]


def own_rate(tmp_path, job) -> float:
    """Samples/s of one worker as the training script itself measured it (steps x batch / wall)."""
    logs = list((tmp_path / "runs" / job).glob("*/logs/attempt-0/worker-0.log"))
    match = DONE.search(logs[0].read_text())
    assert match, logs[0].read_text()[-2000:]
    steps, seconds = int(match.group(1)), float(match.group(2))
    return steps * BATCH / seconds


def test_two_workers_report_throughput_that_the_workers_own_counts_imply(tmp_path, job_name):
    done = run_tandem(*run_args(tmp_path / "runs", command("--steps", "300"), name=job_name, options=["--workers", "2"]),
                      timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    final = history(tmp_path, job_name)[-1]
    assert final["final"] and final["available"]
    per_worker = {w["index"]: w["throughput"] for w in final["perWorker"]}
    assert sorted(per_worker) == [0, 1]
    # Each worker trains the same steps (lock-step DDP); the script's own rate covers the whole
    # loop (first steps included), the reported one the last 30 s: they agree within a margin.
    rate = own_rate(tmp_path, job_name)
    for index, reported in per_worker.items():
        assert 0.6 * rate <= reported <= 1.6 * rate, (index, reported, rate)
    assert abs(final["throughput"] - sum(per_worker.values())) < 1e-6 * final["throughput"]
    assert all(w["steps"] >= 250 for w in final["perWorker"])  # every step but the first is timed
    assert final["stepTimeP50"] <= final["stepTimeP95"]
    assert "throughput:" in done.stderr and "samples/s" in done.stderr and "step p50:" in done.stderr
    assert not processes_of_job(job_name)
    assert not ray_session_of(tmp_path / "runs", job_name)


def test_slow_worker_is_named_the_straggler(tmp_path, job_name):
    done = run_tandem(*run_args(tmp_path / "runs", command("--steps", "250", "--sleep-per-step", "0.04", "--slow-rank", "1"),
                                name=job_name, options=["--workers", "2"]), timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    final = history(tmp_path, job_name)[-1]
    assert final["available"] and final["straggler"] == 1, final
    # Lock-step training: both workers show the same samples/s; compute time tells them apart.
    capacity = {w["index"]: w["capacity"] for w in final["perWorker"]}
    assert capacity[1] < 0.8 * capacity[0]
    assert "straggler: worker 1" in done.stderr


def test_ray_stopped_mid_run_training_completes_and_metrics_are_unavailable(tmp_path, job_name):
    """Ray's processes die while the workers train: training goes on to the end, the run
    succeeds, and its final figures say they are unavailable.

    The workers train until the test releases them (scripts/ddp_until_released.py): with a fixed
    number of steps, a slow Ray start (Ray and the shippers run at nice 10, behind training, on a
    loaded machine) let the first figures appear only with the final read, after training had
    ended, so the "mid-run" kill came after the figures were final and available."""
    release = tmp_path / "release"
    script = ["python", "tests/local/scripts/ddp_until_released.py", str(release)]
    run = start_tandem(*run_args(tmp_path / "runs", "spec.command=" + json.dumps(script),
                                 name=job_name, options=["--workers", "2"]))
    runs = tmp_path / "runs" / job_name
    try:
        def flowing() -> bool:  # figures read from the live Ray (nothing ends before the release)
            assert run.poll() is None, run.stdout.read()[-3000:]
            return any('"throughput"' in f.read_text() for f in runs.glob("*/metrics.jsonl"))

        # The helper gives Ray 60 s to start and 30 s to take its driver.
        wait_for("figures from the run's Ray", flowing, timeout=120)
        victims = ray_pids_listed(tmp_path / "runs", job_name)  # Ray's own, not the helper: as if Ray crashed
        assert victims
        kill(victims)
        assert wait_gone(victims) == []
        release.touch()
        output, _ = run.communicate(timeout=120)
    finally:
        run.kill()
    assert run.returncode == 0, output[-3000:]
    assert "Succeeded" in output
    # Not figures from what the workers Ray had not answered yet kept: that is part of the job.
    assert "metrics unavailable (Ray stopped during the run)" in " ".join(output.split()), output[-3000:]
    assert sorted(re.findall(r"rank (\d): done: \d+ steps", output)) == ["0", "1"], output[-3000:]
    assert output.count("training goes on without metrics") <= 2  # at most once per rank
    assert not processes_of_job(job_name)
    assert not ray_session_of(tmp_path / "runs", job_name)


def test_bench_records_the_baseline_and_plots(tmp_path, job_name):
    done = run_tandem("bench", str(REPO / "jobs/mnist-ddp.yaml"), "--workers", "1,2",
                      "--runs-dir", str(tmp_path / "runs"),
                      "--set", f"metadata.name={job_name}", "--set", command("--steps", "100", "--sleep-per-step", "0.01"),
                      # A bound on a hang, not on speed: two runs each start torch, Ray and a figures
                      # service, 49 s on a quiet machine and over 150 s in a cold CI run, where the
                      # local tier shares the two cores with the Go builds and the e2e tier.
                      timeout=480)
    assert done.returncode == 0, done.stderr[-3000:]
    (out,) = (tmp_path / "runs" / job_name).glob("bench-*.png")  # the default: beside the job's runs
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    figures = json.loads(out.with_suffix(".json").read_text())
    assert [p["workers"] for p in figures["points"]] == [1, 2]
    one, two = figures["points"]
    assert one["throughput"] and one["efficiency"] == 1.0
    assert two["efficiency"] == pytest.approx(two["throughput"] / (2 * one["throughput"]))
    recorded = json.loads((tmp_path / "runs" / job_name / "baseline.json").read_text())
    assert recorded["throughput"] == pytest.approx(one["throughput"])
    assert "scaling efficiency" in done.stderr
    assert not ray_session_of(tmp_path / "runs", job_name)
    # `tandem dashboard` lists the sweep, with the figures the bench wrote.
    from tandem.dashboard.sources import LocalRuns
    from tandem.dashboard.views import sweep_page

    (sweep,) = LocalRuns(tmp_path / "runs").sweeps()
    shown = sweep_page(sweep.job, sweep.stamp, sweep.data, sweep.plot is not None)
    assert shown.has_plot and [p.workers for p in shown.points] == [1, 2] and shown.points[0].efficiency == "100%"


FAKE_NVML = '''"""A stand-in for nvidia-ml-py on this CPU machine: two GPUs, each at 42%, 1 of 16 GiB in use."""
from types import SimpleNamespace
def nvmlInit(): pass
def nvmlDeviceGetCount(): return 2
def nvmlDeviceGetHandleByIndex(i): return i
def nvmlDeviceGetHandleByUUID(u): return 0
def nvmlDeviceGetUtilizationRates(h): return SimpleNamespace(gpu=42, memory=0)
def nvmlDeviceGetMemoryInfo(h): return SimpleNamespace(used=1 << 30, total=16 << 30, free=15 << 30)
'''


def test_gpu_use_and_progress_reach_the_figures_and_the_table(tmp_path, job_name):
    """GPU use and progress through a real run: each worker's reporter samples (a fake) NVML off the
    training thread and says its total; both arrive per worker in the final figures and the table."""
    import os

    fake = tmp_path / "fake-nvml"
    fake.mkdir()
    (fake / "pynvml.py").write_text(FAKE_NVML)
    # Two (fake) GPUs, one per worker: a worker with resources.gpus 0 sees none, so makes no figure.
    env = machine_with_gpus(tmp_path, 2)
    env.update({"PYTHONPATH": os.pathsep.join([str(fake), os.environ.get("PYTHONPATH", "")]),
                "COLUMNS": "200"})  # the whole table, not cut to 80 columns
    done = run_tandem(*run_args(tmp_path / "runs", command("--steps", "120", "--sleep-per-step", "0.02"),
                                "resources.gpus=1", name=job_name, options=["--workers", "2"]), timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    final = history(tmp_path, job_name)[-1]
    for worker in final["perWorker"]:
        assert (worker["gpus"], worker["gpuUtilization"]) == (1, 42.0)
        assert worker["gpuMemoryUsed"] == 1 << 30 and worker["gpuMemoryTotal"] == 16 << 30
        assert worker["stepsTotal"] == 120 and worker["stepsDone"] == 120 and worker["stepRate"] > 0
    assert "GPU use" in done.stderr and "42% 1.0/16.0 GiB" in done.stderr
    assert "attempts: #0 " in done.stderr


def test_without_nvml_no_gpu_figure_is_made_up(tmp_path, job_name):
    """No NVML module here (and resources.gpus 0): no GPU figure and no GPU column."""
    done = run_tandem(*run_args(tmp_path / "runs", command("--steps", "60"), name=job_name,
                                options=["--workers", "2"]), timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    final = history(tmp_path, job_name)[-1]
    assert all("gpus" not in w and "gpuUtilization" not in w for w in final["perWorker"])
    assert "GPU use" not in done.stderr
