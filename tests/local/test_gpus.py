"""`tandem run` on a machine whose GPUs are faked: an `nvidia-smi` of the test's own on PATH lists
them, as the real one would. Nothing in the product knows it is tested."""

from __future__ import annotations

import json

import pytest

from tests.support.commands import machine_with_gpus, run_args, run_tandem
from tests.support.processes import processes_of_job

pytestmark = pytest.mark.local

#: Each process prints which worker and local rank it is and which GPUs it sees, in one write:
#: a worker's processes share its output pipe, and print()'s separate writes of each argument
#: interleaved ("devicesdevices 0 0 0,1").
SHOW_DEVICES = ("import os, sys; e = os.environ; sys.stdout.write(' '.join(['devices', e['TANDEM_WORKER_INDEX'], "
                "e['LOCAL_RANK'], e['CUDA_VISIBLE_DEVICES']]) + chr(10)); sys.stdout.flush()")


def test_two_workers_on_one_gpu_are_refused_in_one_line_before_anything_starts(tmp_path, job_name):
    runs = tmp_path / "runs"
    result = run_tandem(*run_args(runs, "resources.gpus=1", name=job_name, metrics=False, options=["--workers", "2"]),
                        env=machine_with_gpus(tmp_path, 1), timeout=60)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "needs 2 GPUs (2 workers x 1)" in lines[0] and "has 1 (nvidia-smi -L)" in lines[0], lines[0]
    assert "--set resources.gpus=0" in lines[0]
    assert not runs.exists()  # no run directory, so no worker, Ray or log either
    assert not processes_of_job(job_name)


def test_each_worker_and_its_processes_see_only_the_worker_s_gpus(tmp_path, job_name):
    command = "spec.command=" + json.dumps(["python", "-c", SHOW_DEVICES])
    result = run_tandem(*run_args(tmp_path / "runs", "resources.gpus=2", "procsPerWorker=2", command,
                                  name=job_name, metrics=False, options=["--workers", "2"]),
                        env=machine_with_gpus(tmp_path, 4))
    assert result.returncode == 0, result.stderr[-3000:]
    seen = sorted(tuple(line.split("devices ", 1)[1].split()) for line in result.stderr.splitlines()
                  if "devices " in line and "tandem.launch" not in line)
    assert seen == [("0", "0", "0,1"), ("0", "1", "0,1"), ("1", "0", "2,3"), ("1", "1", "2,3")], result.stderr[-3000:]
    assert "GPUs: worker 0: 0,1; worker 1: 2,3" in result.stderr
