"""The isolation Tandem's NetworkPolicies claim, on real pods, with a plugin that enforces them:
the real node runs kube-router's policy controller (tests/controlplane/node.py, docs/e2e.md).

- A running TrainingJob's worker port (the coordinator port the operator renders) answers the
  job's own peer worker and refuses a pod of another namespace; with the job's NetworkPolicy
  removed, the same outsider gets through. So the refusal is the policy's doing, enforced, and
  not a dead port or a plugin that drops everything.
- The chart's Ray head: from a job namespace (a pod labelled as Tandem's workers are), the
  gateway's port only; Ray's own ports (GCS 6379, client server 10001) are refused, while this
  machine (the kubelet's probes come from it) reaches all three, so they are open.

Every probe is a TCP connect made with Python's socket module inside a pod (kubectl exec): the
operator's image and the workers' image both have Python. A refused connect is what the enforcer
makes of a blocked one (REJECT); a timeout counts as blocked too. Each check polls: a new pod or
policy takes effect at the enforcer's next sync, a second or two later.
"""

from __future__ import annotations

import functools
import socket
import uuid

import pytest

from tandem.contract import COORDINATOR_PORT
from tests.e2e.chart import ON_REAL_NODE, SYSTEM, apply, describe, example, get_json, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

#: The chart's default ports (charts/tandem/values.yaml: ray.gatewayPort; ray.yaml: Ray's own).
GATEWAY_PORT = 8070
RAY_PORTS = (6379, 10001)

_PROBE = ("import socket, sys\n"
          "try:\n"
          "    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()\n"
          "    print('open')\n"
          "except OSError as e:\n"
          "    print('closed', type(e).__name__, e)\n")


def probe(cp, ns: str, pod: str, ip: str, port: int) -> str:
    """'open' or 'closed <why>': a TCP connect from inside `pod` to ip:port. Anything else
    (kubectl exec failing, no Python) fails the test rather than reading as closed."""
    out = cp.kubectl("exec", "-n", ns, pod, "--", "python", "-c", _PROBE, ip, str(port)).stdout.strip()
    assert out == "open" or out.startswith("closed"), out
    return out


def opens(cp, ns: str, pod: str, ip: str, port: int) -> bool:
    return probe(cp, ns, pod, ip, port) == "open"


def closed(cp, ns: str, pod: str, ip: str, port: int) -> bool:
    return not opens(cp, ns, pod, ip, port)


def host_opens(ip: str, port: int) -> bool:
    """A connect from this machine: what the enforcer always admits (the kubelet's probes)."""
    try:
        socket.create_connection((ip, port), timeout=3).close()
        return True
    except OSError:
        return False


def namespace(cp, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    cp.kubectl("create", "namespace", name)
    cp.kubectl("label", "namespace", name, "pod-security.kubernetes.io/enforce=restricted")
    wait_for(f"ServiceAccount default in {name}",
             lambda: cp.kubectl("get", "sa", "default", "-n", name, check=False).returncode == 0, 30)
    return name


def client_pod(cp, ns: str, name: str, labels: dict[str, str]) -> str:
    """A small pod on the real node, from the operator's image (it has Python), that only
    waits: the probes run in it by kubectl exec. Restricted, as every pod here."""
    image = get_json(cp, "deploy", "tandem-operator", "-n", SYSTEM)["spec"]["template"]["spec"]["containers"][0]["image"]
    apply(cp, ns, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
        "spec": {
            **ON_REAL_NODE,
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 0,
            "securityContext": {"runAsNonRoot": True, "runAsUser": 1000,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "client", "image": image, "imagePullPolicy": "Never",
                "command": ["python", "-c", "import signal; signal.pause()"],
                "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "64Mi"}},
                "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
            }],
        },
    })
    cp.kubectl("wait", "--for=condition=Ready", f"pod/{name}", "-n", ns, "--timeout=120s")
    return name


def worker_pods(cp, ns: str, job: str) -> dict[int, dict]:
    pods = get_json(cp, "pods", "-n", ns, "-l", f"tandem.dev/job-name={job},app.kubernetes.io/component=worker")
    return {int(p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]): p
            for p in pods["items"] if p["status"].get("phase") == "Running" and p["status"].get("podIP")}


def both_running(cp, ns: str, job: str) -> dict[int, dict] | None:
    workers = worker_pods(cp, ns, job)
    return workers if len(workers) == 2 else None


def test_worker_port_is_closed_to_other_namespaces_until_the_policy_goes(tandem, e2e_namespace):
    cp, _ = tandem
    ns = e2e_namespace
    outside = namespace(cp, "outsider")
    try:
        # A real job, long enough to be probed (the workers mostly sleep between steps).
        job = example("mnist-ddp.yaml", "isolated",
                      ["--steps", "100000", "--log-every", "1000", "--sleep-per-step", "0.2"])
        apply(cp, ns, job)
        outsider = client_pod(cp, outside, "outsider", {"app": "outsider"})
        workers = wait_for("both workers running", lambda: both_running(cp, ns, "isolated"), 300,
                           explain=lambda: describe(cp, ns))
        rank0_ip = workers[0]["status"]["podIP"]
        peer = workers[1]["metadata"]["name"]
        policies = get_json(cp, "networkpolicy", "-n", ns, "-l", "tandem.dev/job-name=isolated")["items"]
        assert len(policies) == 1, policies

        # The peer reaches rank 0's coordinator port (it is alive), the outsider is refused.
        wait_for("the peer worker connecting to rank 0's coordinator port",
                 lambda: opens(cp, ns, peer, rank0_ip, COORDINATOR_PORT), 120, explain=lambda: describe(cp, ns))
        wait_for("the outsider refused at rank 0's coordinator port",
                 lambda: not opens(cp, outside, outsider, rank0_ip, COORDINATOR_PORT), 60)
        assert opens(cp, ns, peer, rank0_ip, COORDINATOR_PORT)

        # Without the policy the outsider gets through: the refusal above was the policy's. The
        # operator would render the policy again at once, so it is stopped first.
        cp.kubectl("scale", "deploy/tandem-operator", "-n", SYSTEM, "--replicas=0")
        wait_for("the operator pod gone", lambda: not get_json(
            cp, "pods", "-n", SYSTEM, "-l", "app.kubernetes.io/component=operator")["items"], 120)
        cp.kubectl("delete", "networkpolicy", policies[0]["metadata"]["name"], "-n", ns)
        wait_for("the outsider connecting once the job's NetworkPolicy is gone",
                 lambda: opens(cp, outside, outsider, rank0_ip, COORDINATOR_PORT), 60)
    finally:
        cp.kubectl("delete", "tj", "isolated", "-n", ns, "--wait=false", check=False)
        cp.kubectl("scale", "deploy/tandem-operator", "-n", SYSTEM, "--replicas=1", check=False)
        cp.kubectl("rollout", "status", "deploy/tandem-operator", "-n", SYSTEM, "--timeout=180s", check=False)
        cp.kubectl("delete", "namespace", outside, "--wait=false", check=False)


def test_ray_head_admits_job_namespaces_to_the_gateway_port_only(tandem, e2e_namespace):
    cp, _ = tandem
    ns = e2e_namespace
    head = get_json(cp, "pods", "-n", SYSTEM, "-l", "app.kubernetes.io/component=ray-head")["items"]
    assert len(head) == 1, [p["metadata"]["name"] for p in head]
    head_ip = head[0]["status"]["podIP"]
    ports = (GATEWAY_PORT, *RAY_PORTS)
    # All three listen: this machine, which the enforcer admits, reaches each.
    for port in ports:
        wait_for(f"the Ray head's port {port} answering this machine", functools.partial(host_opens, head_ip, port), 60)

    # A pod of a job namespace labelled as the operator labels workers (what the head's policy admits).
    client = client_pod(cp, ns, "job-client", {"app.kubernetes.io/part-of": "tandem",
                                                "app.kubernetes.io/component": "worker"})
    wait_for("the gateway's port open to a job namespace",
             lambda: opens(cp, ns, client, head_ip, GATEWAY_PORT), 60)
    for port in RAY_PORTS:
        wait_for(f"Ray's port {port} refused to a job namespace",
                 functools.partial(closed, cp, ns, client, head_ip, port), 60)
    # A pod without Tandem's label gets nothing, the gateway included.
    stranger = client_pod(cp, ns, "stranger", {"app": "stranger"})
    for port in ports:
        wait_for(f"port {port} refused to an unlabelled pod",
                 functools.partial(closed, cp, ns, stranger, head_ip, port), 60)
