"""Hang detection locally: `tandem run` tells a real collective deadlock from a slow job.

Two torch workers over gloo; at step 20 rank 1 skips an all-reduce and rank 0 blocks in it
(tests/local/scripts/ddp_deadlock.py). Nothing exits: only the workers' reported steps, which
stop, show it. The run must stop the group as Hung, naming worker 0 (blocked in the all-reduce,
the first to go silent) and the last step seen, and judge the hang by the failure rules."""

from __future__ import annotations

import pytest
import yaml

from tests.support.commands import run_args, run_tandem
from tests.support.processes import wait_until_gone

pytestmark = pytest.mark.local

DEADLINE = 30  # contract.MIN_PROGRESS_DEADLINE_SECONDS


def test_a_deadlocked_group_is_stopped_as_hung_naming_the_silent_worker(tmp_path, job_name):
    job = {
        "apiVersion": "tandem.dev/v1alpha1", "kind": "TrainingJob", "metadata": {"name": job_name},
        "spec": {"framework": "pytorch", "strategy": "ddp", "workers": 2,
                 "command": ["python", "tests/local/scripts/ddp_deadlock.py"],
                 "runPolicy": {"backoffLimit": 2, "progressDeadlineSeconds": DEADLINE, "failurePolicy": {
                     "rules": [{"name": "hung", "action": "FailJob", "onReasons": ["Hung"]}]}}},
    }
    path = tmp_path / "hang.yaml"
    path.write_text(yaml.safe_dump(job))
    result = run_tandem(*run_args(tmp_path / "runs", job_file=path, metrics=True), timeout=240)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-4000:]
    assert "no worker reported a step for" in output and f"(progressDeadlineSeconds {DEADLINE})" in output, output[-4000:]
    assert "silent first: worker 0 (step" in output, output[-4000:]
    assert "last step seen is" in output and "(worker 1)" in output, output[-4000:]
    assert "failure rule 0 (hung) says FailJob" in output, output[-4000:]
    assert "restarting" not in output, output[-4000:]  # FailJob: one attempt, no restart
    worker0 = next((tmp_path / "runs" / job_name).glob("*/logs/attempt-0/worker-0.log")).read_text()
    assert "rank 0 enters the all-reduce of step 20" in worker0
    assert wait_until_gone(job_name) == []
