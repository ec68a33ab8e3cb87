"""`tandem run` end to end: real worker processes, real torch, real TensorFlow."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from tests.conftest import REPO
from tests.support.commands import run_args, run_tandem, start_tandem
from tests.support.processes import cmdline, environ, processes_of_job, wait_for_processes, wait_until_gone
from tests.support.waiting import wait_for

pytestmark = pytest.mark.local


def ddp_command(tmp_path, *extra):
    args = ["python", "jobs/train_ddp.py", "--steps", "60", "--checkpoint-every", "10",
            "--output-dir", str(tmp_path / "out"), *extra]
    return "spec.command=" + json.dumps(args)


def test_two_worker_ddp_ends_with_identical_weights(tmp_path, job_name):
    result = run_tandem(*run_args(tmp_path / "runs", ddp_command(tmp_path), name=job_name, options=["--workers", "2"]))
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((tmp_path / "out" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["checksum"] == ranks[1]["checksum"]
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert "[worker 0]" in result.stderr and "[worker 1]" in result.stderr
    assert "Succeeded" in result.stderr
    assert not processes_of_job(job_name)


def test_worker_exit_code_stops_the_group_and_is_reported(tmp_path, job_name):
    result = run_tandem(*run_args(tmp_path / "runs", "runPolicy.backoffLimit=0",
                                  ddp_command(tmp_path, "--crash-at-step", "25", "--crash-rank", "1",
                                              "--crash-exit-code", "3", "--sleep-per-step", "0.05"), name=job_name))
    assert result.returncode == 3, result.stderr[-3000:]
    assert "worker 1 exited with code 3" in result.stderr
    assert "Failed" in result.stderr
    assert not processes_of_job(job_name)


def test_group_restart_resumes_from_checkpoint(tmp_path, job_name):
    result = run_tandem(*run_args(tmp_path / "runs", "runPolicy.backoffLimit=1",
                                  ddp_command(tmp_path, "--crash-at-step", "25", "--crash-rank", "1",
                                              "--crash-exit-code", "3"), name=job_name))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "restarting all workers (1/1)" in result.stderr
    assert "resumed from step 20" in result.stderr
    assert "restarts: 1" in result.stderr
    ranks = [json.loads((tmp_path / "out" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["checksum"] == ranks[1]["checksum"]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_leaves_no_process(tmp_path, job_name, signum):
    run = start_tandem(*run_args(tmp_path / "runs", ddp_command(tmp_path, "--steps", "100000", "--sleep-per-step", "0.01"),
                                 name=job_name))
    try:
        wait_for_processes(job_name, 4)  # 2 launchers + torchrun children
        time.sleep(2)
        run.send_signal(signum)
        output, _ = run.communicate(timeout=20)
        assert run.returncode == 130, output[-2000:]
        assert "interrupted" in output
        assert wait_until_gone(job_name, 5) == []
    finally:
        run.kill()


def test_killed_worker_is_reported_and_nothing_is_left(tmp_path, job_name):
    run = start_tandem(*run_args(tmp_path / "runs", "runPolicy.backoffLimit=0",
                                 ddp_command(tmp_path, "--steps", "100000", "--sleep-per-step", "0.01"), name=job_name))
    try:
        def rank_1():
            return [pid for pid in processes_of_job(job_name)
                    if any(b"jobs/train_ddp.py" in arg for arg in cmdline(pid)) and b"RANK=1" in environ(pid)]

        ranks = wait_for("rank 1 started", rank_1, timeout=60, interval=0.2)
        time.sleep(2)  # let it train a little
        os.kill(ranks[-1], signal.SIGKILL)
        output, _ = run.communicate(timeout=30)  # the other rank must not hang the run
        assert run.returncode != 0
        assert "worker 1 exited with code" in output, output[-2000:]
        assert wait_until_gone(job_name, 5) == []
    finally:
        run.kill()


def test_two_worker_tensorflow_multi_worker_mirrored(tmp_path, job_name):
    args = ["python", "jobs/train_keras.py", "--epochs", "1", "--steps-per-epoch", "20",
            "--output-dir", str(tmp_path / "out")]
    result = run_tandem(*run_args(tmp_path / "runs", "spec.command=" + json.dumps(args), name=job_name,
                                  job_file=REPO / "jobs/keras-mwms.yaml", options=["--workers", "2"]))
    assert result.returncode == 0, result.stderr[-3000:]
    outputs = [json.loads((tmp_path / "out" / f"worker{i}.json").read_text()) for i in (0, 1)]
    assert outputs[0]["checksum"] == outputs[1]["checksum"]
    assert "Succeeded" in result.stderr
    assert not processes_of_job(job_name)


def test_the_deadline_stops_the_group_and_spends_no_restart(tmp_path, job_name):
    """activeDeadlineSeconds as on Kubernetes (api/deadline.py): once it passes, every worker is
    stopped, the run fails with DeadlineExceeded's words, and no restart is spent on it."""
    sleeper = ["python", "-c", "import time; time.sleep(600)"]
    result = run_tandem(*run_args(tmp_path / "runs", "spec.command=" + json.dumps(sleeper),
                                  "runPolicy.activeDeadlineSeconds=3", "runPolicy.backoffLimit=2", name=job_name,
                                  job_file=REPO / "jobs/keras-mwms.yaml", metrics=False), timeout=120)
    assert result.returncode == 124, result.stderr[-3000:]
    assert "ran longer than activeDeadlineSeconds (3)" in result.stderr
    assert "restarts: 0" in result.stderr
    assert not processes_of_job(job_name)
