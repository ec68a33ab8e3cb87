"""Runs the real operator (`tandem operator run`) against the test control plane."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from tests.conftest import REPO

TPU_NODE = {
    "apiVersion": "v1",
    "kind": "Node",
    "metadata": {
        "name": "kwok-tpu-v5e-{i}",
        "annotations": {"kwok.x-k8s.io/node": "fake"},
        "labels": {
            "kubernetes.io/hostname": "kwok-tpu-v5e-{i}", "kubernetes.io/os": "linux", "type": "kwok",
            "cloud.google.com/gke-tpu-accelerator": "tpu-v5-lite-podslice",
            "cloud.google.com/gke-tpu-topology": "2x4",
        },
    },
    "spec": {"taints": [{"key": "google.com/tpu", "value": "present", "effect": "NoSchedule"}]},
    "status": {
        "allocatable": {"cpu": "32", "memory": "128Gi", "pods": "110", "google.com/tpu": "4"},
        "capacity": {"cpu": "32", "memory": "128Gi", "pods": "110", "google.com/tpu": "4"},
    },
}


def add_tpu_nodes(control_plane, count: int = 2) -> None:
    items = [json.loads(json.dumps(TPU_NODE).replace("{i}", str(i))) for i in range(count)]
    control_plane.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))


class Operator:
    """One `tandem operator run` process; stop() or kill() it, start() again."""

    def __init__(self, kubeconfig: str, log_path: Path, lease_namespace: str = "kube-system", *extra: str,
                 env: dict[str, str] | None = None):
        self.kubeconfig, self.log_path, self.env = kubeconfig, log_path, env or {}
        self.args = ["--health-port", "0", "--metrics-port", "0", "--lease-namespace", lease_namespace, *extra]
        self.process: subprocess.Popen | None = None

    def start(self) -> "Operator":
        env = {**os.environ, "KUBECONFIG": self.kubeconfig, "PYTHONPATH": str(REPO / "operator"), **self.env}
        log = self.log_path.open("a")
        self.process = subprocess.Popen([sys.executable, "-m", "tandem", "operator", "run", *self.args],
                                        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""


def get(control_plane, namespace: str, kind: str, name: str | None = None, selector: str | None = None) -> Any:
    """One object, or a List with the selector, as kubectl prints it; None if it is not there."""
    args = ["get", kind, "-n", namespace, "-o", "json"]
    if name:
        args.insert(2, name)
    if selector:
        args += ["-l", selector]
    result = control_plane.kubectl(*args, check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60, interval: float = 0.3) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def example(name: str, **spec_changes: Any) -> dict[str, Any]:
    document = yaml.safe_load((REPO / "jobs" / name).read_text())
    for key, value in spec_changes.items():
        document["spec"][key] = value
    return document


@pytest.fixture(scope="session")
def crd(control_plane):
    """The TrainingJob CRD installed and established, once per session."""
    control_plane.kubectl("apply", "--server-side", "-f", str(REPO / "manifests" / "crd.yaml"))
    control_plane.kubectl("wait", "--for=condition=established", "crd/trainingjobs.tandem.dev", "--timeout=30s")
