"""A real node whose run is killed with SIGKILL, the one signal nothing can clean up after,
leaves nothing behind once the next run starts.

The killed run is the one a developer starts by hand, `python -m tests.controlplane.cluster up
--real-node` (docs/e2e.md), in a subprocess, with a pod running behind a hostPort (CNI's portmap
chains) and a ClusterIP Service (kube-proxy's chains). The kill takes the Python process only.
Then:

- the machine's node lock is free at once (the kernel drops a dead holder's flock);
- every component it started (control plane, containerd, kubelet, kube-proxy, CoreDNS) is
  gone (PR_SET_PDEATHSIG);
- what the kernel does not clean is still there, which is what makes the rest a test: the
  containerd shims and the pod's process below them, the pod's mounts and network namespace,
  its veth on the bridge, the iptables chains;
- the next start (`RealNode.prepare()`, as every run does) removes it all, removes the killed
  run's containers from containerd's kept state before the kubelet sees them, runs a pod, and
  its `stop()` finds the host clean with the lock still held.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tandem._sys.ports import free_port
from tests.conftest import REPO
from tests.controlplane import node as real
from tests.controlplane.cluster import ControlPlane
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.own_node, pytest.mark.timeout(2700)]

#: How long the killed run may wait for another run's node (a colleague's e2e session).
LOCK_WAIT = 1800
NAMESPACE = "crash"
ON_REAL_NODE = {
    "nodeSelector": {"tandem.dev/node": "real"},
    "tolerations": [{"key": real.NODE_TAINT["key"], "operator": "Exists", "effect": "NoSchedule"}],
}


def kubectl(bin_dir: Path, kubeconfig: str, *args: str, input: str | None = None) -> str:
    proc = subprocess.run([str(bin_dir / "kubectl"), f"--kubeconfig={kubeconfig}", *args],
                          input=input, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def pod_running(bin_dir: Path, kubeconfig: str, name: str) -> bool:
    pod = json.loads(kubectl(bin_dir, kubeconfig, "get", "pod", name, "-n", NAMESPACE, "-o", "json"))
    return pod["status"].get("phase") == "Running" and all(
        c.get("ready") for c in pod["status"].get("containerStatuses", [{}]))


def start_killable_run(tmp_path: Path) -> tuple[subprocess.Popen, str, dict[str, int]]:
    """`cluster up --real-node` in a subprocess: (process, its kubeconfig, its components' pids)."""
    out, err = tmp_path / "up.out", tmp_path / "up.err"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.controlplane.cluster", "up", "--real-node", "--nodes", "1",
         "--lock-timeout", str(LOCK_WAIT)],
        cwd=REPO, stdin=subprocess.DEVNULL, stdout=out.open("w"), stderr=err.open("w"))

    def announced() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"cluster up exited {proc.returncode}:\n{err.read_text()[-4000:]}")
        return "# pids " in out.read_text()

    try:
        wait_for("cluster up --real-node to print its pids", announced, LOCK_WAIT + 300, interval=1)
    except BaseException:
        proc.kill()  # SIGKILL as in the test: the next run (or clean_host()) cleans up
        proc.wait()
        raise
    lines = out.read_text().splitlines()
    kubeconfig = next(line.split("=", 1)[1] for line in lines if line.startswith("export KUBECONFIG="))
    pids = json.loads(next(line for line in lines if line.startswith("# pids "))[len("# pids "):])
    return proc, kubeconfig, pids


def veths_on_bridge() -> list[str]:
    out = subprocess.run(["ip", "-o", "link", "show", "master", real.BRIDGE],
                         capture_output=True, text=True).stdout
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if line.strip()]


def interface_exists(name: str) -> bool:
    return Path(f"/sys/class/net/{name}").exists()


def test_a_killed_run_is_cleaned_up_by_the_next_start(real_node_host: Path, tmp_path: Path) -> None:
    bin_dir = real_node_host
    proc, kubeconfig, pids = start_killable_run(tmp_path)
    try:
        host_port = free_port()
        kubectl(bin_dir, kubeconfig, "create", "namespace", NAMESPACE)
        wait_for("the default ServiceAccount", lambda: subprocess.run(
            [str(bin_dir / "kubectl"), f"--kubeconfig={kubeconfig}", "get", "serviceaccount",
             "default", "-n", NAMESPACE], capture_output=True).returncode == 0, 30, interval=0.5)
        kubectl(bin_dir, kubeconfig, "apply", "-f", "-", input=json.dumps({
            "apiVersion": "v1", "kind": "List", "items": [
                {"apiVersion": "v1", "kind": "Pod",
                 "metadata": {"name": "server", "namespace": NAMESPACE, "labels": {"app": "server"}},
                 "spec": {**ON_REAL_NODE, "containers": [{
                     "name": "probe", "image": real.PROBE_IMAGE, "imagePullPolicy": "Never",
                     "args": ["serve", "8080"],
                     "ports": [{"containerPort": 8080, "hostPort": host_port}]}]}},
                {"apiVersion": "v1", "kind": "Service",
                 "metadata": {"name": "server", "namespace": NAMESPACE},
                 "spec": {"selector": {"app": "server"}, "ports": [{"port": 80, "targetPort": 8080}]}},
            ]}))
        wait_for("pod server Running", lambda: pod_running(bin_dir, kubeconfig, "server"), 120, interval=1)
        # kube-proxy has written the Service's chains once its endpoint is ready.
        wait_for("kube-proxy's chain for the Service", lambda: "KUBE-SVC-" in subprocess.run(
            ["iptables-save", "-t", "nat"], capture_output=True, text=True).stdout, 60, interval=1)
        veths = veths_on_bridge()
        containers = real.RealNode().ctr("containers", "ls", "-q").stdout.split()
        assert veths and containers, (veths, containers)
    except BaseException:
        proc.kill()
        proc.wait()
        real.clean_host(lock_timeout=60)
        raise

    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # The lock is free at once: take it before anyone else's run does (they poll once a
    # second), so that what the kill left is looked at and removed here, under the lock.
    lock_fd = real.take_lock(timeout=30, poll=0.05)
    handed_over = False
    try:
        wait_for("the killed run's components to die with it",
                 lambda: not [name for name, pid in pids.items() if real.process_alive(pid)], 30, interval=0.5)

        left = real.host_leftovers()
        shims = [int(line.split()[1].rstrip(":")) for line in left
                 if line.startswith("process ") and "containerd-shim" in line]
        pod_pids = real.pod_processes()
        assert shims, "the kill should have left containerd's shims running:\n" + "\n".join(left)
        assert pod_pids, "the kill should have left the pod's process running:\n" + "\n".join(left)
        assert any(line.startswith("mount ") for line in left), left
        assert f"bridge {real.BRIDGE}" in left, left
        assert any("KUBE-SVC-" in line for line in left), left
        assert any(real.CNI_NETWORK in line for line in left if "iptables" in line), left
        assert all(interface_exists(v) for v in veths), veths

        # The next start: prepare() cleans under the lock handed to it, then a pod runs.
        node = real.RealNode(bin_dir=bin_dir)
        cp = ControlPlane(nodes=1, host_address=real.HOST_IP)
        handed_over = True  # from here node.stop() cleans the host and lets the lock go
        try:
            node.prepare(lock_fd=lock_fd)
            assert not [pid for pid in shims + pod_pids if real.process_alive(pid)], \
                "prepare() left the killed run's processes"
            cp.start()
            node.start(cp)
            reloaded = node.ctr("containers", "ls", "-q").stdout.split()
            assert not set(containers) & set(reloaded), "the killed run's containers are back in the CRI"
            cp.kubectl("create", "namespace", NAMESPACE)
            wait_for("the default ServiceAccount", lambda: cp.kubectl(
                "get", "serviceaccount", "default", "-n", NAMESPACE, check=False).returncode == 0, 30)
            cp.kubectl("apply", "-f", "-", input=json.dumps(
                {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "again", "namespace": NAMESPACE},
                 "spec": {**ON_REAL_NODE, "restartPolicy": "Never", "containers": [{
                     "name": "probe", "image": real.PROBE_IMAGE, "imagePullPolicy": "Never",
                     "args": ["apiserver"]}]}}))
            wait_for("pod again Succeeded", lambda: cp.kubectl(
                "get", "pod", "again", "-n", NAMESPACE, "-o", "jsonpath={.status.phase}").stdout
                == "Succeeded", 120, interval=1)
        finally:
            node.stop()
            cp.stop()
    finally:
        if not handed_over:
            real.clean_host(lock_fd=lock_fd)

    assert not node.leftovers, "after the next run's stop():\n" + "\n".join(node.leftovers)
    assert not [v for v in veths if interface_exists(v)], f"the killed run's veths {veths} are still there"
    assert not [pid for pid in shims + pod_pids if real.process_alive(pid)]
