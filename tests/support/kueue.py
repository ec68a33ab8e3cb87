"""Kueue's manager beside the test control plane, for the tests that need it (test_queueing.py).

Built once from the Go module proxy by tests/controlplane/kueue/build.sh (cached with its CRDs);
started only by the `kueue` fixture, so the rest of the cluster tier never pays for it.

It runs as a local process with the admin kubeconfig. No webhook is registered with the API
server: Tandem creates its Jobs already suspended and labelled with their queue, which is what
Kueue's mutating webhook would otherwise do, and the tests create only valid Kueue objects.
Kueue's own certificate management still runs (the manager waits for it before its controllers
start), filling the (empty at first) Secret in kueue-system that a real install ships; the fixture
copies it into the manager's certDir, as the kubelet's Secret volume would.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import urllib.request
from pathlib import Path
from typing import Any, Optional

import pytest

from tandem._sys.ports import free_ports
from tests.conftest import REPO
from tests.controlplane.cluster import ControlPlane, _Component
from tests.support.waiting import wait_for

BUILD_SH = REPO / "tests" / "controlplane" / "kueue" / "build.sh"
NAMESPACE = "kueue-system"
CONFIG = """apiVersion: config.kueue.x-k8s.io/v1beta1
kind: Configuration
namespace: {namespace}
health:
  healthProbeBindAddress: 127.0.0.1:{health}
metrics:
  bindAddress: "0"
webhook:
  host: 127.0.0.1
  port: {webhook}
  certDir: {cert_dir}
leaderElection:
  leaderElect: false
internalCertManagement:
  enable: true
  webhookServiceName: kueue-webhook-service
  webhookSecretName: kueue-webhook-server-cert
integrations:
  frameworks: ["batch/job"]
"""


def build() -> Path:
    """The directory holding bin/kueue and crd/ (built on first use); skips without Go."""
    result = subprocess.run(["bash", str(BUILD_SH)], capture_output=True, text=True, timeout=3600)
    if result.returncode == 3:
        pytest.skip(f"Kueue needs Go to build: {result.stderr.strip()}")
    if result.returncode != 0:
        pytest.fail(f"building Kueue failed:\n{result.stderr[-3000:]}", pytrace=False)
    return Path(result.stdout.strip().splitlines()[-1])


class Kueue:
    """One Kueue manager against `control_plane`; stop() ends it."""

    def __init__(self, control_plane: ControlPlane, workdir: Path):
        self.control_plane, self.workdir = control_plane, workdir
        self.component: Optional[_Component] = None

    def start(self, timeout: float = 120) -> Kueue:
        home = build()
        cp = self.control_plane
        cp.kubectl("apply", "--server-side", "-f", str(home / "crd"))
        cp.kubectl("wait", "--for=condition=established", "--timeout=60s", "-f", str(home / "crd"))
        if cp.kubectl("get", "namespace", NAMESPACE, check=False).returncode != 0:
            cp.kubectl("create", "namespace", NAMESPACE)
        # Kueue's install ships this Secret empty; the certificate rotator fills it.
        cp.kubectl("create", "secret", "generic", "kueue-webhook-server-cert", "-n", NAMESPACE, check=False)
        health, webhook = free_ports(2)
        (self.workdir / "certs").mkdir(parents=True, exist_ok=True)
        config = self.workdir / "kueue-config.yaml"
        config.write_text(CONFIG.format(namespace=NAMESPACE, health=health, webhook=webhook,
                                        cert_dir=self.workdir / "certs"))
        env = {**os.environ, "KUBECONFIG": str(cp.kubeconfig)}
        # VisibilityOnDemand serves an aggregated API on a fixed port: not needed, and two runs would clash.
        self.component = _Component("kueue", [str(home / "bin" / "kueue"), f"--config={config}",
                                              "--feature-gates=VisibilityOnDemand=false", "--zap-log-level=2"],
                                    self.workdir / "kueue.log", env)
        wait_for("Kueue's certificates in its Secret", self._mount_certs, timeout=timeout, interval=0.5,
                 explain=self.log_tail)
        wait_for("Kueue's /readyz", lambda: self._ready(health), timeout=timeout, interval=0.5,
                 explain=self.log_tail)
        return self

    def _mount_certs(self) -> bool:
        """Do the kubelet's part: a pod would see the Secret mounted at certDir, and the manager
        waits for the files the rotator put in the Secret to appear there."""
        found = self.control_plane.kubectl("get", "secret", "kueue-webhook-server-cert", "-n", NAMESPACE,
                                           "-o", "json", check=False)
        data = json.loads(found.stdout).get("data") or {} if found.returncode == 0 else {}
        if not {"tls.crt", "tls.key"} <= set(data):
            return False
        for name, value in data.items():
            (self.workdir / "certs" / name).write_bytes(base64.b64decode(value))
        return True

    def _ready(self, port: int) -> bool:
        assert self.component is not None
        if not self.component.alive():
            raise AssertionError(f"Kueue exited:\n{self.log_tail()}")
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2).status == 200
        except OSError:
            return False

    def log_tail(self, lines: int = 60) -> str:
        return self.component.log_tail(lines) if self.component is not None else ""

    def stop(self) -> None:
        if self.component is not None and self.component.alive():
            self.component.proc.terminate()
            try:
                self.component.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.component.proc.kill()
                self.component.proc.wait(5)
        if self.component is not None:
            self.component.close_log()

    def apply(self, *objects: dict[str, Any]) -> None:
        self.control_plane.kubectl("apply", "-f", "-",
                                   input=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)}))


def resource_flavor(name: str) -> dict[str, Any]:
    return {"apiVersion": "kueue.x-k8s.io/v1beta1", "kind": "ResourceFlavor", "metadata": {"name": name}}


def cluster_queue(name: str, namespace: str, flavor: str, gpus: int) -> dict[str, Any]:
    """A ClusterQueue for one namespace's LocalQueues, with `gpus` GPUs of quota (and plenty of
    CPU and memory); lower-priority workloads in it may be preempted for higher ones."""
    return {
        "apiVersion": "kueue.x-k8s.io/v1beta1", "kind": "ClusterQueue", "metadata": {"name": name},
        "spec": {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
            "preemption": {"withinClusterQueue": "LowerPriority"},
            "resourceGroups": [{
                "coveredResources": ["cpu", "memory", "nvidia.com/gpu"],
                "flavors": [{"name": flavor, "resources": [
                    {"name": "cpu", "nominalQuota": "64"},
                    {"name": "memory", "nominalQuota": "256Gi"},
                    {"name": "nvidia.com/gpu", "nominalQuota": str(gpus)},
                ]}],
            }],
        },
    }


def local_queue(name: str, namespace: str, cluster_queue_name: str) -> dict[str, Any]:
    return {"apiVersion": "kueue.x-k8s.io/v1beta1", "kind": "LocalQueue",
            "metadata": {"name": name, "namespace": namespace}, "spec": {"clusterQueue": cluster_queue_name}}


def workload_priority_class(name: str, value: int) -> dict[str, Any]:
    return {"apiVersion": "kueue.x-k8s.io/v1beta1", "kind": "WorkloadPriorityClass",
            "metadata": {"name": name}, "value": value, "description": f"test priority {value}"}
