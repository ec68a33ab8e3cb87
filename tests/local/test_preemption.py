"""Preemption checkpoints through `tandem run` (docs/reliability.md, "Preemption"): SIGTERM to
`tandem run` reaches the training processes as a pod deletion's SIGTERM reaches a pod's; they save
a checkpoint at the step they were at, and `tandem run --resume` finishes from it.

Periodic checkpoints are off (--checkpoint-every 0), so the only checkpoint there can be is the
one the SIGTERM made. The step reached when the signal was sent is read from worker 0's log
(every step is logged), before the signal: the checkpoint must hold that step or a later one.
"""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import pytest

from tests.support.commands import run_args, run_tandem, start_tandem
from tests.support.processes import wait_until_gone
from tests.support.waiting import wait_for

pytestmark = pytest.mark.local

TOTAL = 400


def ddp_command(tmp_path: Path, sleep: float) -> str:
    args = ["python", "jobs/train_ddp.py", "--steps", str(TOTAL), "--checkpoint-every", "0", "--log-every", "1",
            "--output-dir", str(tmp_path / "out")]
    if sleep:
        args += ["--sleep-per-step", str(sleep)]
    return "spec.command=" + json.dumps(args)


def logged_step(runs: Path, job: str) -> int:
    """The last step worker 0 logged in the run's first attempt; 0 before any."""
    logs = sorted(runs.glob(f"{job}/*/logs/attempt-0/worker-0.log"))
    text = logs[-1].read_text(errors="replace") if logs else ""
    steps = [int(s) for s in re.findall(r"rank 0: step (\d+)/", text)]
    return max(steps, default=0)


def test_sigterm_saves_at_the_step_reached_and_resume_finishes(tmp_path, job_name):
    import torch

    runs = tmp_path / "runs"
    run = start_tandem(*run_args(runs, ddp_command(tmp_path, 0.05), name=job_name, metrics=False))
    try:
        wait_for("20 steps logged", lambda: logged_step(runs, job_name) >= 20 or None, timeout=180)
        reached = logged_step(runs, job_name)
        run.send_signal(signal.SIGTERM)
        output, _ = run.communicate(timeout=120)
        assert run.returncode == 130, output[-3000:]
        assert wait_until_gone(job_name, 10) == []
    finally:
        run.kill()
    checkpoints = list(runs.glob(f"{job_name}/*/checkpoints/checkpoint.pt"))
    assert len(checkpoints) == 1, output[-3000:]
    saved = int(torch.load(checkpoints[0], map_location="cpu", weights_only=True)["step"])
    assert reached <= saved < TOTAL, (reached, saved)
    assert f"rank 0: stopping at step {saved}: asked to stop (SIGTERM), checkpoint saved at step {saved}" in output
    assert f"rank 1: stopping at step {saved}" in output, output[-3000:]  # every rank stopped at the same step

    result = run_tandem(*run_args(runs, ddp_command(tmp_path, 0.0), name=job_name, metrics=False,
                                  options=["--resume"]), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    # Steps lost: none of those trained before the signal; the resumed run starts where it stopped.
    assert f"rank 0: resumed from step {saved}" in result.stderr, result.stderr[-3000:]
    assert f"rank 1: resumed from step {saved}" in result.stderr, result.stderr[-3000:]
    first_resumed = min(int(s) for s in re.findall(r"rank 0: step (\d+)/", result.stderr))
    assert first_resumed == saved + 1, (first_resumed, saved)
    ranks = [json.loads((tmp_path / "out" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["steps"] for r in ranks] == [TOTAL, TOTAL]
    assert ranks[0]["checksum"] == ranks[1]["checksum"]
