"""TensorBoard on local runs: both frameworks write event files a real TensorBoard serves."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.parse
import urllib.request

import pytest

from tests.support.commands import run_args, start_tandem
from tests.support.processes import kill_job

pytestmark = pytest.mark.local


def get_json(url: str):
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return json.loads(response.read())
    except (OSError, ValueError):
        return None


@pytest.mark.parametrize("example,command", [
    ("mnist-ddp.yaml", ["python", "jobs/train_ddp.py", "--steps", "60", "--sleep-per-step", "0.25", "--log-every", "5"]),
    ("keras-mwms.yaml", ["python", "jobs/train_keras.py", "--epochs", "1", "--steps-per-epoch", "400"]),
])
def test_tensorboard_serves_throughput_step_time_and_loss(tmp_path, example, command):
    name = f"board-{example.split('-')[0]}"
    run = start_tandem(*run_args(tmp_path, "spec.command=" + json.dumps(command), name=name, job_file=f"jobs/{example}",
                                 metrics=False, options=["--tensorboard"]), stdin=subprocess.DEVNULL)
    try:
        url = None
        for line in run.stdout:
            match = re.search(r"TensorBoard: (http://127\.0\.0\.1:\d+/)", line)
            if match:
                url = match.group(1)
                break
        assert url, "tandem run did not print the TensorBoard address"
        tags, deadline = {}, time.monotonic() + 90
        while time.monotonic() < deadline:
            tags = get_json(url + "data/plugin/scalars/tags") or {}
            if {"worker-0", "worker-1"} <= set(tags) and "tandem/loss" in tags.get("worker-0", {}):
                break
            time.sleep(1)
        assert {"worker-0", "worker-1"} <= set(tags), tags
        assert {"tandem/throughput_samples_per_s", "tandem/step_time_s", "tandem/loss"} <= set(tags["worker-0"])
        query = urllib.parse.urlencode({"tag": "tandem/throughput_samples_per_s", "run": "worker-1"})
        points = get_json(url + "data/plugin/scalars/scalars?" + query)
        assert points and all(value > 0 for _, _, value in points)
        output, _ = run.communicate(timeout=120)
        assert run.returncode == 0, output[-2000:]
        assert list((tmp_path / name).glob("*/tensorboard/worker-0/events.out.tfevents.*"))
        assert get_json(url + "data/plugin/scalars/tags") is None, "TensorBoard must stop with the run"
    finally:
        run.kill()
        kill_job(name)
