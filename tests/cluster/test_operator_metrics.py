"""status.metrics on the cluster: real reporters ship to a real Ray actor, the real operator
reads it and writes throughput and efficiency into the TrainingJob (and `kubectl get tj`)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tandem.metrics.client import reachable
from tests.conftest import REPO
from tests.support.kwok import with_pods
from tests.support.specs import example
from tests.support.waiting import wait_for

from .operator_fixture import Operator
from .test_operator import apply, get

REPORTER = """
import time
from tandem import metrics
r = metrics.reporter()
assert r.enabled, "the reporter is off: check the TANDEM_* env"
while True:
    time.sleep(0.02)
    r.step(samples=64)
"""

#: A reporter whose step time is read from a file, so a test can slow a worker down and let it recover.
PACED_REPORTER = """
import sys, time
from pathlib import Path
from tandem import metrics
r = metrics.reporter()
assert r.enabled, "the reporter is off: check the TANDEM_* env"
pace = Path(sys.argv[1])
while True:
    time.sleep(float(pace.read_text()))
    r.step(samples=64)
"""


def start_reporter(ray_head, namespace: str, name: str, index: int, *args: str, code: str = REPORTER):
    """One worker's process, as a pod would run it, here on loopback."""
    env = {**os.environ, **ray_head.worker_env, "PYTHONPATH": str(REPO / "operator"), "TANDEM_JOB": name,
           "TANDEM_NAMESPACE": namespace, "TANDEM_WORKER_INDEX": str(index), "TANDEM_METRICS": "1",
           "TANDEM_METRICS_ADDRESS": ray_head.address}
    return subprocess.Popen([sys.executable, "-c", code, *args], env=env, start_new_session=True)


@pytest.fixture
def ray_head(tmp_path):
    from tandem.local.ray_session import LocalMetrics

    metrics = LocalMetrics("unused", "unused", workers=2, baseline=None, straggler_threshold=0.8)
    metrics.start(tmp_path)
    try:
        wait_for("Ray", lambda: reachable(metrics.address, timeout=1.0), timeout=90, interval=1)
        yield metrics
    finally:
        metrics.stop()


def test_operator_writes_status_metrics_read_from_ray(control_plane, crd, namespace, tmp_path, ray_head):
    control_plane.kubectl("create", "namespace", "lease-metrics-test", check=False)
    operator = Operator(control_plane.kubeconfig, tmp_path / "operator.log", "lease-metrics-test", "-n", namespace,
                        "--metrics-address", ray_head.address, env=ray_head.worker_env).start()
    document = with_pods(example("mnist-ddp.yaml"), run_seconds=120)
    document["spec"]["metrics"] = {"enabled": True, "baselineThroughput": 1000.0}
    name = document["metadata"]["name"]
    reporters = []
    try:
        apply(control_plane, namespace, document)
        reporters = [start_reporter(ray_head, namespace, name, index) for index in (0, 1)]

        def figures():
            status = (get(control_plane, namespace, "trainingjob", name) or {}).get("status") or {}
            metrics = status.get("metrics") or {}
            return metrics if metrics.get("available") and len(metrics.get("perWorker", [])) == 2 else None

        metrics = wait_for("status.metrics from Ray", figures, timeout=120, interval=2)
        assert 0 < metrics["throughput"] < 2 * 2 * 64 / 0.02  # two workers, 64 samples per >= 20 ms step
        assert {w["index"] for w in metrics["perWorker"]} == {0, 1}
        assert metrics["scalingEfficiency"] == pytest.approx(metrics["throughput"] / 2000.0, rel=1e-6)
        condition = next(c for c in get(control_plane, namespace, "trainingjob", name)["status"]["conditions"]
                         if c["type"] == "MetricsAvailable")
        assert condition["status"] == "True"
        row = control_plane.kubectl("get", "tj", name, "-n", namespace).stdout.splitlines()[1].split()
        assert float(row[4]) > 0 and float(row[5]) > 0  # THROUGHPUT and EFFICIENCY columns
    finally:
        for process in reporters:
            process.kill()
        operator.stop()


def test_a_recovered_straggler_is_cleared_from_status(control_plane, crd, namespace, tmp_path, ray_head):
    """status.metrics is replaced, not merged: once worker 1 catches up, `straggler` is gone."""
    control_plane.kubectl("create", "namespace", "lease-straggler-test", check=False)
    operator = Operator(control_plane.kubeconfig, tmp_path / "operator.log", "lease-straggler-test", "-n", namespace,
                        "--metrics-address", ray_head.address, env=ray_head.worker_env).start()
    document = with_pods(example("mnist-ddp.yaml"), run_seconds=300)
    document["spec"]["metrics"] = {"enabled": True}
    name = document["metadata"]["name"]
    paces = [tmp_path / "pace-0", tmp_path / "pace-1"]
    paces[0].write_text("0.02")
    paces[1].write_text("0.1")  # worker 1 trains at a fifth of worker 0's rate: the straggler
    reporters = []
    try:
        apply(control_plane, namespace, document)
        reporters = [start_reporter(ray_head, namespace, name, i, str(paces[i]), code=PACED_REPORTER) for i in (0, 1)]

        def metrics():
            return ((get(control_plane, namespace, "trainingjob", name) or {}).get("status") or {}).get("metrics") or {}

        flagged = wait_for("worker 1 flagged", lambda: metrics().get("straggler") == 1, timeout=120, interval=2)
        assert flagged
        paces[1].write_text("0.02")  # it recovers; its slow steps leave the 30 s window
        wait_for("the straggler cleared", lambda: metrics().get("available") and "straggler" not in metrics()
                 and len(metrics().get("perWorker", [])) == 2, timeout=150, interval=3)
    finally:
        for process in reporters:
            process.kill()
        operator.stop()
