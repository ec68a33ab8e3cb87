"""The test control plane itself: scheduling, Jobs, garbage collection, kwok's exit codes,
PodSecurity admission, kubectl, and that nothing is left running after a stop or a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tandem._sys.ports import free_ports
from tests.conftest import REPO
from tests.controlplane.cluster import ControlPlane
from tests.support.kwok import pod_annotations
from tests.support.processes import alive as pid_alive
from tests.support.waiting import wait_for

pytestmark = pytest.mark.cluster


def test_nodes_and_kubectl(control_plane):
    nodes = json.loads(control_plane.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    assert len(nodes) >= 4
    for node in nodes:
        assert node["status"]["allocatable"]["nvidia.com/gpu"] == "8"
        ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}
        assert ready["Ready"] == "True"
    version = json.loads(control_plane.kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"].startswith("v1.33.")
    assert control_plane.server.startswith("https://127.0.0.1:")
    # The admin identity is a cluster admin, through RBAC.
    assert control_plane.kubectl("auth", "can-i", "*", "*").stdout.strip() == "yes"


def test_indexed_job_runs_completes_and_is_garbage_collected(control_plane, k8s_api, namespace):
    from kubernetes import client

    core = client.CoreV1Api(k8s_api)
    batch = client.BatchV1Api(k8s_api)

    core.create_namespaced_service(namespace, {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "workers"},
        "spec": {"clusterIP": "None", "selector": {"job-name": "train"},
                 "ports": [{"name": "rendezvous", "port": 29500}]},
    })
    batch.create_namespaced_job(namespace, {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "train"},
        "spec": {
            "completions": 2,
            "parallelism": 2,
            "completionMode": "Indexed",
            "backoffLimit": 0,
            "template": {
                "metadata": {"annotations": pod_annotations(run_seconds=3)},
                "spec": {
                    "subdomain": "workers",
                    "restartPolicy": "Never",
                    "containers": [{"name": "trainer", "image": "tandem/trainer:test",
                                    "resources": {"limits": {"nvidia.com/gpu": "1"}}}],
                },
            },
        },
    })

    def job_pods():
        return core.list_namespaced_pod(namespace, label_selector="job-name=train").items

    # Scheduled onto kwok nodes and Running (run-seconds keeps them there for a while).
    running = wait_for("2 Running pods", lambda: [
        p for p in job_pods() if p.status.phase == "Running"] if len(
            [p for p in job_pods() if p.status.phase == "Running"]) == 2 else None, timeout=60)
    for pod in running:
        assert pod.spec.node_name.startswith("kwok-node-")
        assert pod.status.pod_ip
    indexes = sorted(p.metadata.annotations["batch.kubernetes.io/job-completion-index"]
                     for p in running)
    assert indexes == ["0", "1"]
    assert {p.spec.hostname for p in running} == {"train-0", "train-1"}

    # They succeed and the Job completes.
    def complete():
        job = batch.read_namespaced_job("train", namespace)
        conds = {c.type: c.status for c in (job.status.conditions or [])}
        return job if conds.get("Complete") == "True" else None

    job = wait_for("Job Complete", complete, timeout=60)
    assert job.status.succeeded == 2
    for pod in job_pods():
        assert pod.status.phase == "Succeeded"
        assert pod.status.container_statuses[0].state.terminated.exit_code == 0

    # Deleting the Job in the background: the garbage collector removes its pods.
    batch.delete_namespaced_job("train", namespace, propagation_policy="Background")
    wait_for("Job gone", lambda: not batch.list_namespaced_job(namespace).items, timeout=30)
    wait_for("pods garbage-collected", lambda: not job_pods(), timeout=60)


def test_pod_annotated_to_fail_ends_failed_with_exit_code(control_plane, k8s_api, namespace):
    from kubernetes import client

    core = client.CoreV1Api(k8s_api)
    core.create_namespaced_pod(namespace, {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "doomed", "annotations": pod_annotations(run_seconds=1, exit_code=3)},
        "spec": {"restartPolicy": "Never",
                 "containers": [{"name": "main", "image": "tandem/trainer:test"}]},
    })
    pod = wait_for("pod Failed", lambda: (lambda p: p if p.status.phase in ("Failed", "Succeeded") else None)(
        core.read_namespaced_pod("doomed", namespace)), timeout=60)
    assert pod.status.phase == "Failed"
    terminated = pod.status.container_statuses[0].state.terminated
    assert terminated.exit_code == 3
    assert terminated.reason == "Error"


def test_failing_job_pod_fails_the_job(control_plane, k8s_api, namespace):
    """The exit-code annotation in a pod template reaches the Job controller."""
    from kubernetes import client

    batch = client.BatchV1Api(k8s_api)
    batch.create_namespaced_job(namespace, {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "broken"},
        "spec": {
            "backoffLimit": 0,
            "podFailurePolicy": {"rules": [{
                "action": "FailJob",
                "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]},
            }]},
            "template": {
                "metadata": {"annotations": pod_annotations(run_seconds=1, exit_code=42)},
                "spec": {"restartPolicy": "Never",
                         "containers": [{"name": "main", "image": "tandem/trainer:test"}]},
            },
        },
    })

    def failed():
        job = batch.read_namespaced_job("broken", namespace)
        conds = {c.type: c for c in (job.status.conditions or [])}
        c = conds.get("Failed")
        return c if c is not None and c.status == "True" else None

    cond = wait_for("Job Failed", failed, timeout=60)
    assert cond.reason == "PodFailurePolicy"


def test_pod_security_admission_is_enforced(control_plane, namespace):
    control_plane.kubectl("label", "namespace", namespace,
                          "pod-security.kubernetes.io/enforce=restricted")
    pod = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "privileged"},
        "spec": {"containers": [{"name": "c", "image": "x",
                                 "securityContext": {"privileged": True}}]},
    }
    out = control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(pod), check=False)
    assert out.returncode != 0
    assert "violates PodSecurity" in out.stderr


def test_rbac_denies_unprivileged_service_account(control_plane, namespace):
    out = control_plane.kubectl(
        "auth", "can-i", "list", "secrets", "-n", namespace,
        f"--as=system:serviceaccount:{namespace}:default", check=False)
    assert out.stdout.strip() == "no"


# -- teardown: nothing may be left running -----------------------------------------------


def _start_dev_cluster(tmp_path: Path) -> tuple[subprocess.Popen, dict[str, int]]:
    """`python -m tests.controlplane.cluster up` in a child; returns it and its component pids."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.controlplane.cluster", "up", "--nodes", "1",
         "--workdir", str(tmp_path / "cp")],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )
    pids = None
    kubeconfig = None
    deadline = time.monotonic() + 180
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("export KUBECONFIG="):
            kubeconfig = line.split("=", 1)[1].strip()
        if line.startswith("# pids "):
            pids = json.loads(line[len("# pids "):])
            break
    if pids is None:
        proc.kill()
        raise AssertionError(f"dev cluster did not come up: {proc.stderr.read()[-4000:]}")
    assert kubeconfig and Path(kubeconfig).exists()
    assert set(pids) == {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"}
    assert all(pid_alive(p) for p in pids.values())
    return proc, pids


@pytest.mark.parametrize("how", ["sigint", "sigterm", "sigkill"])
def test_nothing_left_running(control_plane, tmp_path, how):
    """Ctrl-C and SIGTERM stop the components cleanly; SIGKILL of the Python parent still
    takes them down (PR_SET_PDEATHSIG)."""
    proc, pids = _start_dev_cluster(tmp_path)
    sig = {"sigint": signal.SIGINT, "sigterm": signal.SIGTERM, "sigkill": signal.SIGKILL}[how]
    os.kill(proc.pid, sig)
    proc.wait(timeout=30)
    wait_for("all components gone",
             lambda: not [n for n, p in pids.items() if pid_alive(p)], timeout=20)


def test_context_manager_stops_everything(control_plane, tmp_path):
    with ControlPlane(nodes=1, bin_dir=control_plane.bin_dir) as cp:
        pids = cp.pids
        assert cp.kubectl("get", "nodes").returncode == 0
        assert cp.server != control_plane.server  # no port clash with the session's plane
        workdir = cp.workdir
    assert not [n for n, p in pids.items() if pid_alive(p)]
    assert not Path(workdir).exists()


# -- build.sh ------------------------------------------------------------------------------


BUILD_SH = REPO / "tests" / "controlplane" / "build.sh"


def test_build_is_cached_and_idempotent(control_plane):
    t0 = time.monotonic()
    out = subprocess.run(["bash", str(BUILD_SH)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == control_plane.bin_dir
    assert time.monotonic() - t0 < 10
    for name in ("tandem-k8s", "kwok", "kube-apiserver", "kube-controller-manager",
                 "kube-scheduler", "etcd", "kubectl"):
        assert os.access(Path(control_plane.bin_dir) / name, os.X_OK), name
    assert control_plane.bin_dir.endswith("/bin")
    assert "/v1.33." in control_plane.bin_dir


def test_build_without_go_and_cache_exits_3(tmp_path):
    """What the control_plane fixture turns into a skip (and nothing else)."""
    env = {**os.environ, "TANDEM_CACHE": str(tmp_path / "cache"),
           "TANDEM_GO": str(tmp_path / "no-such-go")}
    out = subprocess.run(["bash", str(BUILD_SH)], capture_output=True, text=True, env=env)
    assert out.returncode == 3, out.stderr
    assert "no Go toolchain" in out.stderr
    assert out.stdout == ""


def test_start_retries_when_a_port_was_taken(control_plane, monkeypatch):
    """Ports are picked free, then bound by the components; one taken in between is retried."""
    import socket

    import tests.controlplane.cluster as cluster

    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    taken = squatter.getsockname()[1]
    real = free_ports
    calls = []

    def first_one_taken(n):
        ports = real(n)
        if not calls:
            ports[0] = taken  # etcd's client port
        calls.append(ports)
        return ports

    monkeypatch.setattr(cluster, "free_ports", first_one_taken)
    try:
        with ControlPlane(nodes=1, bin_dir=control_plane.bin_dir) as cp:
            assert cp.ports["etcd"] != taken
            assert cp.kubectl("get", "nodes").returncode == 0
    finally:
        squatter.close()
    assert len(calls) == 2
