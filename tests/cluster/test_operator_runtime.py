"""The operator process itself: health and Prometheus endpoints, one leader among replicas."""

from __future__ import annotations

import time
import urllib.request

from tandem._sys.ports import free_port
from tests.support.kwok import with_pods
from tests.support.specs import example
from tests.support.waiting import wait_for

from .operator_fixture import Operator, crd  # noqa: F401 - crd fixture
from .test_operator import apply, phase


def http_get(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.read().decode()
    except OSError:
        return ""


def test_health_and_metrics_endpoints(control_plane, crd, namespace, tmp_path):  # noqa: F811
    control_plane.kubectl("create", "namespace", "lease-health-test", check=False)
    health, metrics = free_port(), free_port()
    leader = Operator(control_plane.kubeconfig, tmp_path / "leader.log", "lease-health-test", "-n", namespace)
    leader.args[:4] = ["--health-port", str(health), "--metrics-port", str(metrics)]
    leader.start()
    follower = None
    try:
        wait_for("/healthz", lambda: http_get(f"http://127.0.0.1:{health}/healthz"), 40)
        document = with_pods(example("mnist-ddp.yaml"), run_seconds=1)
        apply(control_plane, namespace, document)
        wait_for("Succeeded", lambda: phase(control_plane, namespace, "mnist-ddp") == "Succeeded", 60)
        scraped = http_get(f"http://127.0.0.1:{metrics}/metrics")
        assert 'tandem_reconcile_total{result="ok"}' in scraped
        assert 'tandem_trainingjobs{phase="Succeeded"} 1.0' in scraped
        # A second replica waits for the lease, says so, and is healthy meanwhile (probes pass).
        follower_health = free_port()
        follower = Operator(control_plane.kubeconfig, tmp_path / "follower.log", "lease-health-test", "-n", namespace)
        follower.args[:2] = ["--health-port", str(follower_health)]
        follower.start()
        wait_for("follower waits", lambda: "another replica leads" in follower.log(), 30)
        assert http_get(f"http://127.0.0.1:{follower_health}/healthz").startswith("ok: waiting for the lease")
        assert http_get(f"http://127.0.0.1:{health}/healthz").startswith("ok: leading")
    finally:
        leader.stop()
        if follower:
            follower.stop()


def test_only_one_replica_acts_and_a_follower_takes_over(control_plane, crd, namespace, tmp_path):  # noqa: F811
    control_plane.kubectl("create", "namespace", "lease-ha-test", check=False)
    first = Operator(control_plane.kubeconfig, tmp_path / "first.log", "lease-ha-test", "-n", namespace).start()
    wait_for("first leads", lambda: "leading as" in first.log(), 30)
    second = Operator(control_plane.kubeconfig, tmp_path / "second.log", "lease-ha-test", "-n", namespace).start()
    try:
        wait_for("second waits", lambda: "another replica leads" in second.log(), 30)
        document = with_pods(example("mnist-ddp.yaml"), run_seconds=1)
        document["metadata"]["name"] = "before-failover"
        apply(control_plane, namespace, document)
        wait_for("Succeeded", lambda: phase(control_plane, namespace, "before-failover") == "Succeeded", 60)
        assert "before-failover" in first.log() and "before-failover" not in second.log()
        first.kill()  # no clean release: the follower must wait for the lease to expire
        killed = time.monotonic()
        wait_for("second leads", lambda: "leading as" in second.log(), 45)
        takeover = time.monotonic() - killed
        document["metadata"]["name"] = "after-failover"
        apply(control_plane, namespace, document)
        wait_for("Succeeded", lambda: phase(control_plane, namespace, "after-failover") == "Succeeded", 60)
        assert "after-failover" in second.log()
        print(f"takeover after SIGKILL of the leader: {takeover:.1f} s")
    finally:
        first.kill()
        second.stop()
