"""An outage of the figures path never harms a job: a real `tandem run` with a progress deadline,
whose figures service (the local gateway and the reader in front of Ray) is frozen mid-run for
longer than the deadline, then let go. The workers keep stepping throughout; the run must never
call them Hung, their shippers must resume, and the job must succeed."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
import yaml

from tandem._sys import proctree
from tests.support.commands import start_tandem
from tests.support.processes import processes_of_job, ray_session_of
from tests.support.waiting import wait_for

pytestmark = pytest.mark.local

DEADLINE = 30  # contract.MIN_PROGRESS_DEADLINE_SECONDS
OUTAGE = DEADLINE + 15  # the scenario's length: longer than the deadline


def _figures_service(job: str) -> list[int]:
    """The run's figures service (the helper serving the gateway; not Ray's own processes)."""
    found = []
    for pid in proctree.live_with_env("TANDEM_RAY_SESSION", f"{job}-", prefix=True):
        try:
            if b"tandem.local.figures_service" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
        except OSError:
            continue
    return found


def _history(runs: Path, job: str) -> list[dict]:
    files = list((runs / job).glob("*/metrics.jsonl"))
    if not files:
        return []
    return [json.loads(line) for line in files[0].read_text().splitlines() if line.strip()]


def _logs(runs: Path, job: str) -> str:
    return "".join(p.read_text() for p in (runs / job).glob("*/logs/attempt-0/worker-*.log"))


def _steps(entry: dict) -> int:
    return max((w.get("steps", 0) for w in entry.get("perWorker") or []), default=0)


def test_a_frozen_figures_service_longer_than_the_deadline_is_not_a_hang(tmp_path, job_name):
    runs, release = tmp_path / "runs", tmp_path / "release"
    job = {
        "apiVersion": "tandem.dev/v1alpha1", "kind": "TrainingJob", "metadata": {"name": job_name},
        "spec": {"framework": "pytorch", "strategy": "ddp", "workers": 2,
                 # Trains until released, after the outage and the shippers' resumption: a fixed
                 # number of steps must cover the slowest machine and so runs a minute past it.
                 "command": ["python", "tests/local/scripts/ddp_until_released.py", str(release)],
                 "metrics": {"enabled": True},
                 "runPolicy": {"backoffLimit": 2, "progressDeadlineSeconds": DEADLINE, "failurePolicy": {
                     "rules": [{"name": "hung", "action": "FailJob", "onReasons": ["Hung"]}]}}},
    }
    path = tmp_path / "outage.yaml"
    path.write_text(yaml.safe_dump(job))
    run = start_tandem("run", str(path), "--runs-dir", str(runs))
    frozen: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while not any(_steps(e) > 0 for e in _history(runs, job_name)):  # figures flow
            assert run.poll() is None, run.stdout.read()[-3000:]
            assert time.monotonic() < deadline, "no figures within 120 s"
            time.sleep(0.2)
        frozen = _figures_service(job_name)
        assert len(frozen) == 1, frozen
        before = _steps(_history(runs, job_name)[-1])
        os.kill(frozen[0], signal.SIGSTOP)  # the gateway and its reader stop answering
        until = time.monotonic() + OUTAGE
        while time.monotonic() < until:  # the outage itself; training must go on through it
            assert run.poll() is None, "the run ended during the outage"
            time.sleep(0.5)
        os.kill(frozen[0], signal.SIGCONT)
        frozen = []
        wait_for("the shippers to resume", lambda: "figures resumed" in _logs(runs, job_name), timeout=120,
                 explain=lambda: _logs(runs, job_name)[-4000:])
        release.touch()
        output, _ = run.communicate(timeout=400)
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
        run.kill()
    assert run.returncode == 0, output[-4000:]
    assert "Succeeded" in output, output[-4000:]
    assert "Hung" not in output and "no worker reported a step" not in output, output[-4000:]
    assert not list((runs / job_name).glob("*/logs/attempt-1")), "the group was restarted"
    logs = _logs(runs, job_name)
    assert "figures delayed" in logs and "figures resumed" in logs, logs[-4000:]
    assert "training goes on without metrics" not in logs
    final = _history(runs, job_name)[-1]
    assert final.get("final") and final["available"], final
    assert _steps(final) > before  # the steps made during and after the outage arrived
    assert not processes_of_job(job_name)
    assert not ray_session_of(runs, job_name)
