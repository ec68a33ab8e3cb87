"""`tandem run --workers 1:2`: elastic PyTorch workers on this machine, real torch processes.

A worker's launcher killed (as a lost pod) is not a group restart: the other worker trains on
alone, the run starts a replacement that rejoins, and the world grows back to 2."""

from __future__ import annotations

import os
import re
import signal

import pytest

from tests.support.commands import run_args, start_tandem
from tests.support.processes import wait_for_new_pid, wait_until_gone

from .test_reliability import CHECKPOINT_EVERY, command, final_ranks, launcher_of_worker, wait_for_checkpoint

pytestmark = pytest.mark.local


def wait_for_new_launcher(job_name: str, index: int, old: int) -> int:
    return wait_for_new_pid(lambda: launcher_of_worker(job_name, index), old, f"worker {index} did not rejoin")


def test_a_lost_worker_of_an_elastic_run_rejoins_and_the_world_grows_back(tmp_path, job_name):
    total = 300
    args = run_args(tmp_path / "runs", "runPolicy.inPlaceRestarts=2", "runPolicy.backoffLimit=0",
                    command(tmp_path, total, 0.1), name=job_name, metrics=False, options=["--workers", "1:2"])
    run = start_tandem(*args)
    try:
        wait_for_checkpoint(tmp_path, job_name, 2 * CHECKPOINT_EVERY)
        first = launcher_of_worker(job_name, 0)
        lost = launcher_of_worker(job_name, 1)
        os.kill(lost, signal.SIGKILL)
        wait_for_new_launcher(job_name, 1, lost)
        assert launcher_of_worker(job_name, 0) == first  # worker 0 went on: no group restart
        output, _ = run.communicate(timeout=400)
        # backoffLimit 0: a group restart would have failed the run.
        assert run.returncode == 0, output[-4000:]
        assert "worker 1 lost (exit 137): 1 of 2 train on (min 1)" in output, output[-4000:]
        assert "restarting all workers" not in output, output[-4000:]
        assert re.search(r"restarts: 0 ", output), output[-4000:]
        summary = re.search(r"elastic workers 1\.\.2: desired 2   rejoined: 1   world size by round: ([\d >-]+)", output)
        assert summary, output[-4000:]
        sizes = [int(size) for size in summary.group(1).split("->")]
        # It started with 2, trained on with 1 after the loss, and grew back to 2.
        assert sizes[0] == 2 and 1 in sizes and sizes[-1] == 2 and sizes.index(1) < len(sizes) - 1, sizes
        final_ranks(tmp_path, total)
        assert wait_until_gone(job_name, 5) == []
    finally:
        run.kill()
