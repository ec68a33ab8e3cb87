"""Preemption checkpoints through `tandem run` (docs/reliability.md, "Preemption checkpoints"): SIGTERM to
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

from tests.conftest import REPO
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


def sigterm_after(run, job_name: str, logged, steps: int, timeout: float) -> tuple[int, str]:
    """SIGTERM `tandem run` once its worker 0 logged `steps` steps; the step reached then and the
    run's output. It must stop as interrupted, leaving no process."""
    try:
        wait_for(f"{steps} steps logged", lambda: logged() >= steps or None, timeout=timeout)
        reached = logged()
        run.send_signal(signal.SIGTERM)
        output, _ = run.communicate(timeout=120)
        assert run.returncode == 130, output[-3000:]
        assert wait_until_gone(job_name, 10) == []
    finally:
        run.kill()
    return reached, output


def test_sigterm_saves_at_the_step_reached_and_resume_finishes(tmp_path, job_name):
    import torch

    runs = tmp_path / "runs"
    run = start_tandem(*run_args(runs, ddp_command(tmp_path, 0.05), name=job_name, metrics=False))
    reached, output = sigterm_after(run, job_name, lambda: logged_step(runs, job_name), steps=20, timeout=180)
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


def keras_command(tmp_path: Path, steps: int, checkpoint_every: int) -> str:
    args = ["python", "jobs/train_keras.py", "--epochs", "1", "--steps-per-epoch", str(steps),
            "--checkpoint-every", str(checkpoint_every), "--log-every", "10", "--output-dir", str(tmp_path / "out")]
    return "spec.command=" + json.dumps(args)


def keras_logged_step(runs: Path, job: str) -> int:
    logs = sorted(runs.glob(f"{job}/*/logs/attempt-0/worker-0.log"))
    text = logs[-1].read_text(errors="replace") if logs else ""
    return max((int(s) for s in re.findall(r"worker 0: step (\d+)/", text)), default=0)


def keras_checkpoint_step(runs: Path, job: str) -> int:
    """The step of the chief's latest checkpoint, from TensorFlow's `checkpoint` index file
    (the example numbers each checkpoint by its step: ckpt-<step>)."""
    index = list(runs.glob(f"{job}/*/checkpoints/checkpoint"))
    assert len(index) == 1, index
    found = re.search(r'^model_checkpoint_path: "ckpt-(\d+)"', index[0].read_text(), re.MULTILINE)
    assert found, index[0].read_text()
    return int(found.group(1))


def test_keras_sigterm_saves_at_the_step_reached_and_resume_finishes(tmp_path, job_name):
    runs, keras_job = tmp_path / "runs", REPO / "jobs" / "keras-mwms.yaml"
    endless = 1_000_000  # periodic checkpoints only at the end, which this run never reaches
    run = start_tandem(*run_args(runs, keras_command(tmp_path, endless, endless), name=job_name, metrics=False,
                                 job_file=keras_job))
    reached, output = sigterm_after(run, job_name, lambda: keras_logged_step(runs, job_name), steps=50, timeout=240)
    saved = keras_checkpoint_step(runs, job_name)
    assert saved >= reached, (reached, saved)
    assert f"worker 0: stopping at step {saved}: asked to stop (SIGTERM), checkpoint saved at step {saved}" in output
    assert f"worker 1: stopping at step {saved}" in output, output[-3000:]

    total = saved + 20
    result = run_tandem(*run_args(runs, keras_command(tmp_path, total, 0), name=job_name, metrics=False,
                                  job_file=keras_job, options=["--resume"]), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"worker 0: resumed from step {saved}" in result.stderr, result.stderr[-3000:]
    assert f"worker 1: resumed from step {saved}" in result.stderr, result.stderr[-3000:]
    workers = [json.loads((tmp_path / "out" / f"worker{i}.json").read_text()) for i in (0, 1)]
    assert [w["steps"] for w in workers] == [total, total]
    assert workers[0]["checksum"] == workers[1]["checksum"]


KERAS_FIT = """
import os, signal, sys
import numpy as np
import keras
from tandem.preemption import keras as preemption

backup = sys.argv[1]
keras.utils.set_random_seed(0)
model = keras.Sequential([keras.Input(shape=(8,)), keras.layers.Dense(4)])
model.compile(optimizer="sgd", loss="mse")
x, y = np.ones((640, 8), "float32"), np.zeros((640, 4), "float32")


class SignalAtBatch(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if batch == 5 and not preemption.requested():
            os.kill(os.getpid(), signal.SIGTERM)  # what the kubelet sends a preempted pod


seen = []
counter = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: seen.append(batch))
model.fit(x, y, batch_size=8, epochs=3, verbose=0,
          callbacks=[preemption.backup_and_restore(backup, save_freq=1000), SignalAtBatch(), counter])
print("batches trained:", len(seen), "saved:", sorted(os.listdir(backup)))
sys.exit(preemption.exit_code())
"""


def test_keras_fit_callback_saves_and_stops_on_sigterm(tmp_path):
    """model.fit with tandem.preemption.keras.backup_and_restore: a SIGTERM sent at the end of
    batch 5 (of 80 per epoch), after the backup callback looked, ends fit() at the next batch end
    (7 batches trained), with Keras' backup written (periodic saves are every 1000 batches, so
    no other could have written it), and the process exits 143."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run([sys.executable, "-c", KERAS_FIT, str(tmp_path / "backup")], capture_output=True,
                            text=True, timeout=300, env=env)
    assert result.returncode == 143, result.stderr[-3000:]
    assert "batches trained: 7 saved: ['latest.weights.h5', 'training_metadata.json']" in result.stdout, \
        result.stdout + result.stderr[-2000:]
