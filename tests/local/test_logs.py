"""`tandem logs` on local runs: prefixes, one worker, and --follow that ends with the run."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from tests.support.commands import run_args, run_tandem, start_tandem

pytestmark = pytest.mark.local


def tandem(*args):
    return run_tandem(*args, timeout=120)


def test_logs_of_a_finished_and_of_a_running_job(tmp_path):
    runs = str(tmp_path / "runs")
    command = ["python", "jobs/train_ddp.py", "--steps", "40", "--sleep-per-step", "0.1", "--log-every", "5"]
    run = start_tandem(*run_args(tmp_path / "runs", "spec.command=" + json.dumps(command), name="logs-demo", metrics=False),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not list((tmp_path / "runs").glob("logs-demo/*/logs/attempt-0/worker-1.log")):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        followed = tandem("logs", "logs-demo", "--follow", "--runs-dir", runs)  # returns when the run ends
        assert run.wait(60) == 0
    finally:
        run.kill()
    assert followed.returncode == 0
    assert "[worker 0] rank 0: step 40/40" in followed.stdout and "[worker 1] rank 1: step 40/40" in followed.stdout
    one = tandem("logs", "logs-demo", "-w", "1", "--runs-dir", runs)
    assert "[worker 1]" in one.stdout and "[worker 0]" not in one.stdout
    missing = tandem("logs", "never-ran", "--runs-dir", runs)
    assert missing.returncode == 1 and "no local run" in missing.stderr
