"""The real node itself: pods run, find each other by their cluster DNS names, reach the
apiserver through the `kubernetes` Service, and `kubectl logs` reads their output.

The pods run tandem-probe (tests/controlplane/cmd/tandem-probe), a static program in a
one-layer image, under the restricted Pod Security Standard, on the tainted real node only.
"""

from __future__ import annotations

import functools
import json

from tests.controlplane import node as real
from tests.support import waiting

#: Each check runs kubectl: poll once a second, not four times, on a 2-core machine.
wait_for = functools.partial(waiting.wait_for, interval=1.0)

PORT = 8080
RESTRICTED = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "runAsUser": 65535,
    "seccompProfile": {"type": "RuntimeDefault"},
}
ON_REAL_NODE = {
    "nodeSelector": {"tandem.dev/node": "real"},
    "tolerations": [{"key": real.NODE_TAINT["key"], "operator": "Exists", "effect": "NoSchedule"}],
    "automountServiceAccountToken": True,
}


def probe_container(*args: str) -> dict:
    return {"name": "probe", "image": real.PROBE_IMAGE, "imagePullPolicy": "Never",
            "args": list(args), "securityContext": RESTRICTED,
            "env": [{"name": "PROBE_TIMEOUT", "value": "90"}]}


def apply(cp, *objects: dict) -> None:
    cp.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)}))


def pod_phase(cp, ns: str, name: str) -> str:
    out = cp.kubectl("get", "pod", name, "-n", ns, "-o", "jsonpath={.status.phase}", check=False)
    return out.stdout.strip()


def describe(cp, ns: str) -> str:
    return cp.kubectl("get", "pods,events", "-n", ns, "-o", "wide", check=False).stdout


def test_node_registered_beside_kwok_nodes(real_cluster):
    cp, _node = real_cluster
    nodes = {n["metadata"]["name"]: n for n in json.loads(cp.kubectl("get", "nodes", "-o", "json").stdout)["items"]}
    assert "kwok-node-0" in nodes
    mine = nodes[real.NODE_NAME]
    assert mine["metadata"]["labels"]["tandem.dev/node"] == "real"
    assert real.NODE_TAINT in mine["spec"]["taints"]
    assert mine["status"]["nodeInfo"]["kubeletVersion"] == "v1.33.13"
    assert mine["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")
    assert {"type": "InternalIP", "address": real.HOST_IP} in mine["status"]["addresses"]


def test_pods_find_each_other_by_dns_and_reach_the_apiserver(real_cluster, e2e_namespace):
    cp, node = real_cluster
    ns = e2e_namespace
    archives = real.sandbox_archives(node.bin_dir)
    node.load_image(archives[real.PROBE_IMAGE])

    # Tandem's shape: a headless Service over an Indexed Job whose pods have
    # hostname <job>-<index> and subdomain <job>; index 1 dials index 0 by its DNS name.
    job = "workers"
    peer = f"{job}-0.{job}.{ns}.svc:{PORT}"
    apply(cp,
          {"apiVersion": "v1", "kind": "Service", "metadata": {"name": job, "namespace": ns},
           "spec": {"clusterIP": "None", "publishNotReadyAddresses": True,
                    "selector": {"job-name": job}, "ports": [{"name": "probe", "port": PORT}]}},
          {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": job, "namespace": ns},
           "spec": {"completionMode": "Indexed", "completions": 2, "parallelism": 2, "backoffLimit": 0,
                    "template": {"spec": {**ON_REAL_NODE, "subdomain": job, "restartPolicy": "Never",
                                          "containers": [probe_container("pair", peer)]}}}},
          # A ClusterIP Service (kube-proxy) and a server behind it, dialled by its short name.
          {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "echo", "namespace": ns, "labels": {"app": "echo"}},
           "spec": {**ON_REAL_NODE, "containers": [{**probe_container("serve", str(PORT)),
                                                     "ports": [{"containerPort": PORT}]}]}},
          {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "echo", "namespace": ns},
           "spec": {"selector": {"app": "echo"}, "ports": [{"port": 80, "targetPort": PORT}]}},
          {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client", "namespace": ns},
           "spec": {**ON_REAL_NODE, "restartPolicy": "Never",
                    "containers": [probe_container("dial", f"echo.{ns}.svc:80")]}},
          {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "apiserver", "namespace": ns},
           "spec": {**ON_REAL_NODE, "restartPolicy": "Never",
                    "containers": [probe_container("apiserver")]}})

    def job_done():
        out = cp.kubectl("get", "job", job, "-n", ns, "-o", "json").stdout
        status = json.loads(out)["status"]
        assert not status.get("failed"), f"a worker failed:\n{describe(cp, ns)}"
        return status.get("succeeded") == 2

    try:
        wait_for("the Indexed Job's two pods to succeed", job_done, 180)
        for pod in ("client", "apiserver"):
            wait_for(f"pod {pod} Succeeded",
                     lambda pod=pod: pod_phase(cp, ns, pod) in ("Succeeded", "Failed"), 120)
            assert pod_phase(cp, ns, pod) == "Succeeded", cp.kubectl("logs", pod, "-n", ns, check=False).stdout
    except AssertionError:
        raise AssertionError(describe(cp, ns)) from None

    pods = json.loads(cp.kubectl("get", "pods", "-n", ns, "-o", "json").stdout)["items"]
    assert {p["spec"]["nodeName"] for p in pods} == {real.NODE_NAME}
    assert all(p["status"]["podIP"].startswith("10.250.0.") for p in pods if p["status"].get("podIP"))

    # kubectl logs goes apiserver -> kubelet (client certificate checked against the CA).
    dialer = cp.kubectl("logs", "-n", ns, "-l", "batch.kubernetes.io/job-completion-index=1").stdout
    assert f"resolved {job}-0.{job}.{ns}.svc to 10.250.0." in dialer
    assert f"answer: hello from {job}-0" in dialer
    server_log = cp.kubectl("logs", "-n", ns, "-l", "batch.kubernetes.io/job-completion-index=0").stdout
    assert f"serving on :{PORT} as {job}-0" in server_log

    client_log = cp.kubectl("logs", "-n", ns, "client").stdout
    assert f"resolved echo.{ns}.svc to 10.0.0." in client_log
    assert "answer: hello from echo" in client_log

    api_log = cp.kubectl("logs", "-n", ns, "apiserver").stdout
    assert "apiserver v1.33.13 at https://10.0.0.1:443" in api_log
    assert "apiserver v1.33.13 at https://kubernetes.default.svc" in api_log


def test_a_name_outside_the_cluster_does_not_resolve(real_cluster, e2e_namespace):
    """Cluster DNS answers only cluster names: nothing is forwarded off this machine."""
    cp, node = real_cluster
    ns = e2e_namespace
    node.load_image(real.sandbox_archives(node.bin_dir)[real.PROBE_IMAGE])
    pod = {**probe_container("dial", "example.com:80"), "env": [{"name": "PROBE_TIMEOUT", "value": "2"}]}
    apply(cp, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "outside", "namespace": ns},
               "spec": {**ON_REAL_NODE, "restartPolicy": "Never", "containers": [pod]}})
    wait_for("pod outside to finish", lambda: pod_phase(cp, ns, "outside") in ("Succeeded", "Failed"), 120)
    assert pod_phase(cp, ns, "outside") == "Failed"
    assert "no such host" in cp.kubectl("logs", "-n", ns, "outside").stdout
