"""`tandem run` end to end: real worker processes, real torch, real TensorFlow."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from tests.conftest import REPO
from tests.processes import kill_job, processes_of_job, wait_for_processes, wait_until_gone

pytestmark = pytest.mark.local


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def tandem_run(tmp_path, job_file, *args, timeout=240, **popen):
    cmd = [sys.executable, "-m", "tandem", "run", str(job_file), "--runs-dir", str(tmp_path / "runs"), *args]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout, **popen)


def ddp_command(tmp_path, *extra):
    args = ["python", "jobs/train_ddp.py", "--steps", "60", "--checkpoint-every", "10",
            "--output-dir", str(tmp_path / "out"), *extra]
    return "spec.command=" + json.dumps(args)


@pytest.fixture
def job_name():
    name = unique("t")
    yield name
    kill_job(name)


def test_two_worker_ddp_ends_with_identical_weights(tmp_path, job_name):
    result = tandem_run(tmp_path, REPO / "jobs/mnist-ddp.yaml", "--set", f"metadata.name={job_name}",
                        "--set", ddp_command(tmp_path), "--workers", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((tmp_path / "out" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["checksum"] == ranks[1]["checksum"]
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert "[worker 0]" in result.stderr and "[worker 1]" in result.stderr
    assert "Succeeded" in result.stderr
    assert not processes_of_job(job_name)


def test_worker_exit_code_stops_the_group_and_is_reported(tmp_path, job_name):
    result = tandem_run(tmp_path, REPO / "jobs/mnist-ddp.yaml", "--set", f"metadata.name={job_name}",
                        "--set", "runPolicy.backoffLimit=0",
                        "--set", ddp_command(tmp_path, "--crash-at-step", "25", "--crash-rank", "1",
                                             "--crash-exit-code", "3", "--sleep-per-step", "0.05"))
    assert result.returncode == 3, result.stderr[-3000:]
    assert "worker 1 exited with code 3" in result.stderr
    assert "Failed" in result.stderr
    assert not processes_of_job(job_name)


def test_group_restart_resumes_from_checkpoint(tmp_path, job_name):
    result = tandem_run(tmp_path, REPO / "jobs/mnist-ddp.yaml", "--set", f"metadata.name={job_name}",
                        "--set", "runPolicy.backoffLimit=1",
                        "--set", ddp_command(tmp_path, "--crash-at-step", "25", "--crash-rank", "1",
                                             "--crash-exit-code", "3"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "restarting all 2 workers (1/1)" in result.stderr
    assert "resumed from step 20" in result.stderr
    assert "restarts: 1" in result.stderr
    ranks = [json.loads((tmp_path / "out" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["checksum"] == ranks[1]["checksum"]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_leaves_no_process(tmp_path, job_name, signum):
    cmd = [sys.executable, "-m", "tandem", "run", str(REPO / "jobs/mnist-ddp.yaml"), "--runs-dir", str(tmp_path / "runs"),
           "--set", f"metadata.name={job_name}", "--set", ddp_command(tmp_path, "--steps", "100000", "--sleep-per-step", "0.01")]
    run = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
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
    cmd = [sys.executable, "-m", "tandem", "run", str(REPO / "jobs/mnist-ddp.yaml"), "--runs-dir", str(tmp_path / "runs"),
           "--set", f"metadata.name={job_name}", "--set", "runPolicy.backoffLimit=0",
           "--set", ddp_command(tmp_path, "--steps", "100000", "--sleep-per-step", "0.01")]
    run = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        def rank_1():
            found = []
            for pid in processes_of_job(job_name):
                try:
                    if (b"jobs/train_ddp.py" in open(f"/proc/{pid}/cmdline", "rb").read()
                            and b"RANK=1" in open(f"/proc/{pid}/environ", "rb").read().split(b"\0")):
                        found.append(pid)
                except OSError:
                    pass
            return found

        deadline = time.monotonic() + 60
        while not (ranks := rank_1()):
            assert time.monotonic() < deadline, "rank 1 never started"
            time.sleep(0.2)
        time.sleep(2)  # let it train a little
        started = time.monotonic()
        os.kill(ranks[-1], signal.SIGKILL)
        output, _ = run.communicate(timeout=30)
        assert time.monotonic() - started < 15
        assert run.returncode != 0
        assert "worker 1 exited with code" in output, output[-2000:]
        assert wait_until_gone(job_name, 5) == []
    finally:
        run.kill()


def test_two_worker_tensorflow_multi_worker_mirrored(tmp_path, job_name):
    args = ["python", "jobs/train_keras.py", "--epochs", "1", "--steps-per-epoch", "20",
            "--output-dir", str(tmp_path / "out")]
    result = tandem_run(tmp_path, REPO / "jobs/keras-mwms.yaml", "--set", f"metadata.name={job_name}",
                        "--set", "spec.command=" + json.dumps(args), "--workers", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    outputs = [json.loads((tmp_path / "out" / f"worker{i}.json").read_text()) for i in (0, 1)]
    assert outputs[0]["checksum"] == outputs[1]["checksum"]
    assert "Succeeded" in result.stderr
    assert not processes_of_job(job_name)
