"""A tenant's pod cannot be a Ray driver on the chart's Ray head where no NetworkPolicy stops it:
Ray's token authentication is the barrier, not the policy. The test removes the head's
NetworkPolicy for its duration (and puts it back), which is what a network plugin that does not
enforce NetworkPolicy amounts to, whether or not this node's plugin enforces it.

One pod in a tenant namespace (restricted Pod Security Standard, on the real node), from the
image the head runs (so it has the same Ray and grpc), is given the head pod's IP, as an
attacker scanning the pod network would find it. It connects to Ray's GCS (6379) and client
(10001) ports, so the network is open and the refusals below are Ray's; calls the GCS without a
token and with a guessed one; and tries `ray.init("ray://...")`. Every call is refused as
unauthenticated. Meanwhile the gateway beside the head, which holds the pod's token, is a
driver (its log says it connected; test_real_jobs's mnist test shows figures arriving).
"""

from __future__ import annotations

import contextlib
import json
from typing import Iterator

from tests.e2e.chart import ON_REAL_NODE, SYSTEM, apply, get_json, wait_for

HEAD = "tandem-ray-head"
GCS_PORT, CLIENT_PORT = 6379, 10001
RESTRICTED = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "runAsUser": 1000,
    "seccompProfile": {"type": "RuntimeDefault"},
}

#: What the tenant's pod runs: one JSON line of what each attempt got.
PROBE = r"""
import json, socket, sys, time
import grpc
from ray.core.generated import gcs_service_pb2 as gcs, gcs_service_pb2_grpc as gcs_grpc

host, gcs_port, client_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
seen = {}
for port in (gcs_port, client_port):
    deadline = time.monotonic() + 60  # an enforcing plugin drops a removed policy within seconds
    while f"tcp:{port}" not in seen:
        try:
            socket.create_connection((host, port), timeout=3).close()
            seen[f"tcp:{port}"] = "open"
        except OSError as error:
            if time.monotonic() > deadline:
                seen[f"tcp:{port}"] = f"closed: {error}"
            time.sleep(0.5)
channel = grpc.insecure_channel(f"{host}:{gcs_port}")
for who, metadata in (("no-token", ()), ("guessed-token", (("authorization", "Bearer guessed"),))):
    for name, call, request in (
        ("GetClusterId", gcs_grpc.NodeInfoGcsServiceStub(channel).GetClusterId, gcs.GetClusterIdRequest()),
        ("InternalKVKeys", gcs_grpc.InternalKVGcsServiceStub(channel).InternalKVKeys,
         gcs.InternalKVKeysRequest(prefix=b"", namespace=b"")),
    ):
        try:
            call(request, timeout=20, metadata=metadata)
            seen[f"gcs:{name}:{who}"] = "OK"
        except grpc.RpcError as error:
            seen[f"gcs:{name}:{who}"] = error.code().name
import ray
try:
    ray.init(f"ray://{host}:{client_port}", logging_level="ERROR")
    seen["driver"] = "connected"
except Exception as error:
    seen["driver"] = f"{type(error).__name__}: {error}"[:500]
print(json.dumps(seen))
"""


@contextlib.contextmanager
def _head_policy_removed(cp) -> Iterator[None]:
    """The chart's NetworkPolicy on the head deleted, then put back as it was (helm's labels and
    annotations with it, so the release still owns it)."""
    policy = get_json(cp, "networkpolicy", HEAD, "-n", SYSTEM)
    for field in ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields"):
        policy["metadata"].pop(field, None)
    cp.kubectl("delete", "networkpolicy", HEAD, "-n", SYSTEM)
    try:
        yield
    finally:
        cp.kubectl("apply", "-f", "-", input=json.dumps(policy))


def _head_pod(cp) -> dict:
    pods = get_json(cp, "pods", "-n", SYSTEM, "-l", "app.kubernetes.io/component=ray-head")["items"]
    running = [p for p in pods if p["status"].get("phase") == "Running" and p["status"].get("podIP")]
    assert len(running) == 1, [p["metadata"]["name"] for p in pods]
    return running[0]


#: Ray's client tries its port three times, sleeping 5, 10 and 15 s after each refusal, before
#: ray.init gives up: 30 s that prove nothing the first refusal did not. Two seconds a try keeps
#: the three tries (the channel to an open port in the same cluster is ready well within it).
_QUICK_CLIENT = [{"name": "RAY_CLIENT_INITIAL_CONNECTION_TIMEOUT_S", "value": "2"},
                 {"name": "RAY_CLIENT_MAX_CONNECTION_TIMEOUT_S", "value": "2"}]


def _attacker(ns: str, image: str, head_ip: str) -> dict:
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ray-driver", "namespace": ns},
        "spec": {**ON_REAL_NODE, "restartPolicy": "Never", "automountServiceAccountToken": False,
                 "containers": [{"name": "probe", "image": image, "imagePullPolicy": "Never",
                                 "command": ["python", "-c", PROBE, head_ip, str(GCS_PORT), str(CLIENT_PORT)],
                                 "env": [{"name": "HOME", "value": "/tmp"}, *_QUICK_CLIENT],
                                 "resources": {"requests": {"cpu": "100m", "memory": "256Mi"},
                                               "limits": {"memory": "1Gi"}},
                                 "securityContext": RESTRICTED}]},
    }


def test_a_tenant_pod_that_reaches_ray_is_refused_as_a_driver(tandem, e2e_namespace):
    cp, _ = tandem
    ns = e2e_namespace
    head = _head_pod(cp)
    image = head["spec"]["containers"][0]["image"]

    def ended() -> str:
        phase = get_json(cp, "pod", "ray-driver", "-n", ns)["status"].get("phase", "")
        return phase if phase in ("Succeeded", "Failed") else ""

    def explain() -> str:
        return cp.kubectl("get", "pods,events", "-n", ns, "-o", "wide", check=False).stdout + \
            cp.kubectl("logs", "ray-driver", "-n", ns, "--tail=40", check=False).stdout

    with _head_policy_removed(cp):
        apply(cp, ns, _attacker(ns, image, head["status"]["podIP"]))
        phase = wait_for("the tenant's probe pod to end", ended, 240, explain=explain)
    log = cp.kubectl("logs", "ray-driver", "-n", ns).stdout
    assert phase == "Succeeded", explain()
    # The probe prints one JSON line last; Ray's client may warn (stderr, the same log) after it.
    seen = json.loads(next(line for line in reversed(log.strip().splitlines()) if line.startswith("{")))

    # Not vacuous: the pod reached both of Ray's ports (no NetworkPolicy in the way), so what
    # refused it was Ray.
    assert seen[f"tcp:{GCS_PORT}"] == seen[f"tcp:{CLIENT_PORT}"] == "open", seen
    # The GCS answers a caller without the token, or with a wrong one, with UNAUTHENTICATED:
    # no cluster id, no key listing (Ray's function table and named actors live there).
    gcs = {k: v for k, v in seen.items() if k.startswith("gcs:")}
    assert len(gcs) == 4 and set(gcs.values()) == {"UNAUTHENTICATED"}, seen
    # A driver over Ray's client port gets no connection either.
    assert seen["driver"] != "connected", seen
    print(f"\nthe tenant's driver: {seen['driver']}")

    # The gateway, holding the head pod's token, is Ray's driver all the same.
    def gateway_log() -> str:
        return cp.kubectl("logs", head["metadata"]["name"], "-n", SYSTEM, "-c", "gateway", check=False).stdout

    wait_for("the gateway connected to Ray", lambda: "connected to Ray" in gateway_log(), 120, explain=gateway_log)
