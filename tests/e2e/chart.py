"""What the e2e tests of the installed chart share: `helm install` of the chart on the real node
(the operator as a pod from its own image, the chart's Ray head), the example jobs as this
cluster runs them, and the kubectl helpers their checks use.

Each test applies a copy of jobs/*.yaml with what only this cluster needs, set through the
spec's podTemplate (never in jobs/*.yaml): the real node's nodeSelector and toleration, small
resources (the machine has 2 cores), few steps, and a volume that outlives the pods where the
test needs one (a hostPath PersistentVolume bound to a claim: restricted pods may mount claims,
not hostPath). The fixtures (``tandem``, session-scoped, so the chart is installed once for every
file; ``shared_claim``) are declared in conftest.py from the generators here.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import time
from pathlib import Path
from typing import Iterator

import yaml

from tests.controlplane import node as real
from tests.e2e import images
from tests.e2e.node_images import NodeImages
from tests.support import waiting
from tests.support.helm import CHART, helm_runner

#: Each check runs kubectl: poll once a second, not four times, on a 2-core machine.
wait_for = functools.partial(waiting.wait_for, interval=1.0)

REPO = Path(__file__).resolve().parents[2]
SYSTEM = "tandem-system"
RELEASE = "tandem"
RESTRICTED = "pod-security.kubernetes.io/enforce=restricted"
ON_REAL_NODE = {
    "nodeSelector": {"tandem.dev/node": "real"},
    "tolerations": [{"key": real.NODE_TAINT["key"], "operator": "Exists", "effect": "NoSchedule"}],
}
#: The operator's image-pull grace in this tier (the chart's operator.imagePullGraceSeconds, the
#: process operator's --image-pull-grace-seconds): a missing image is known missing at once here
#: (nothing is reachable from the node), so the operator's default 90 s would be waited out for
#: nothing; a few of the kubelet's back-off retries still happen within it.
IMAGE_PULL_GRACE_SECONDS = 15
#: Where the tests' PersistentVolumes keep their files on the host; removed at the end.
VOLUMES = Path("/var/lib/tandem-e2e-volumes")
#: The operator's figure of one worker's samples/s is taken from a recorded one-worker run,
#: which a cluster does not have: the jobs name one, so that efficiency = throughput / (2 x it).
BASELINE = 100.0


# ------------------------------------------------------------------ helpers


def get_json(cp, *args: str) -> dict:
    return json.loads(cp.kubectl("get", *args, "-o", "json").stdout)


def tj_status(cp, ns: str, name: str) -> dict:
    result = cp.kubectl("get", "tj", name, "-n", ns, "-o", "json", check=False)
    return (json.loads(result.stdout).get("status") or {}) if result.returncode == 0 else {}


def describe(cp, ns: str) -> str:
    pods = cp.kubectl("get", "tj,jobs,pods,events", "-n", ns, "-o", "wide", check=False).stdout
    tjs = cp.kubectl("get", "tj", "-n", ns, "-o", "yaml", check=False).stdout
    operator = cp.kubectl("logs", "-n", SYSTEM, "deploy/tandem-operator", "--tail=60", check=False).stdout
    workers = "".join(f"\n--- {pod} log (tail):\n{cp.kubectl('logs', pod, '-n', ns, '--tail=25', check=False).stdout}"
                      for pod in cp.kubectl("get", "pods", "-n", ns, "-o", "name", check=False).stdout.split())
    return f"{pods}\n{tjs[-3000:]}\noperator log:\n{operator}{workers}"


def pod_logs(cp, ns: str, job: str) -> dict[int, str]:
    """Every worker pod's log, by worker index (the last pod of each index)."""
    pods = get_json(cp, "pods", "-n", ns, "-l", f"tandem.dev/job-name={job},app.kubernetes.io/component=worker")["items"]
    pods.sort(key=lambda p: p["metadata"]["creationTimestamp"])
    return {int(p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]):
            cp.kubectl("logs", p["metadata"]["name"], "-n", ns, check=False).stdout for p in pods}


def worker_pod(cp, ns: str, job: str, index: int) -> dict | None:
    """The newest pod of one worker index, or None."""
    pods = get_json(cp, "pods", "-n", ns, "-l", f"tandem.dev/job-name={job},app.kubernetes.io/component=worker")["items"]
    mine = [p for p in pods if p["metadata"]["annotations"].get("batch.kubernetes.io/job-completion-index") == str(index)]
    return max(mine, key=lambda p: p["metadata"]["creationTimestamp"]) if mine else None


def example(file: str, name: str, args: list[str], cpu: str = "700m", memory: str = "2Gi") -> dict:
    """jobs/<file> as the test runs it: on the real node, small, with the test's own arguments."""
    document = yaml.safe_load((REPO / "jobs" / file).read_text())
    document["metadata"]["name"] = name
    spec = document["spec"]
    spec["command"] = [*spec["command"][:2], *args]
    spec["resources"] = {"cpu": cpu, "memory": memory}
    spec["podTemplate"] = {**ON_REAL_NODE}
    spec["runPolicy"] = {"backoffLimit": 2}
    return document


def with_volume(document: dict, claim: str, path: str = "/shared") -> dict:
    template = document["spec"]["podTemplate"]
    template["volumes"] = [{"name": "shared", "persistentVolumeClaim": {"claimName": claim}}]
    template["volumeMounts"] = [{"name": "shared", "mountPath": path}]
    return document


def apply(cp, ns: str, *objects: dict) -> None:
    cp.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)}))


@contextlib.contextmanager
def held_off_the_node(cp, ns: str, prefix: str) -> Iterator[None]:
    """While inside, pods of `ns` named `prefix`* cannot be bound to a node (an admission policy
    refuses their binding; the scheduler retries): the Job controller creates such a pod as usual,
    and it starts once the block ends and the policy is deleted."""
    hold = f"hold-{prefix}{ns}"[:63].rstrip("-")
    cp.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy", "metadata": {"name": hold},
         "spec": {"failurePolicy": "Fail",
                  "matchConstraints": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
                                       "resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                                                          "operations": ["CREATE"], "resources": ["pods/binding"]}]},
                  "validations": [{"expression": f"!object.metadata.name.startsWith('{prefix}')",
                                   "message": "held back by the test"}]}},
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
         "metadata": {"name": hold}, "spec": {"policyName": hold, "validationActions": ["Deny"]}}]}))
    try:
        time.sleep(3)  # the apiserver picks policies up from its informer; nothing to poll for it
        yield
    finally:
        cp.kubectl("delete", "validatingadmissionpolicybinding,validatingadmissionpolicy", hold, check=False)


def run_to_end(cp, ns: str, name: str, timeout: float = 300) -> dict:
    def ended():
        status = tj_status(cp, ns, name)
        return status if status.get("phase") in ("Succeeded", "Failed") else None
    status = wait_for(f"TrainingJob {name} to end", ended, timeout, explain=lambda: describe(cp, ns))
    assert status["phase"] == "Succeeded", describe(cp, ns)
    return status


# ------------------------------------------------------------------ fixtures (declared in conftest.py)


def installed_chart(real_cluster, node_images: NodeImages, tmp_path_factory):
    """The chart, installed with helm: the operator pod from tandem/operator, the Ray head,
    both on the real node, in a namespace enforcing the restricted Pod Security Standard.
    The jobs' images too are in the node's containerd before the first test runs."""
    cp, node = real_cluster
    started = time.monotonic()
    for name in images.IMAGES:  # imported in the background since the node started
        node_images.wait(name)
    loaded = time.monotonic()
    home = tmp_path_factory.mktemp("helm-home")
    helm = helm_runner(cp.kubeconfig, home, timeout=300)
    values = home / "values.yaml"
    values.write_text(yaml.safe_dump({
        "image": {"pullPolicy": "Never"},
        # The tier's grace, as test_faults gives its operator process: here it shows that the
        # chart's value reaches an operator pod that takes it (or helm install --wait fails).
        "operator": {"imagePullGraceSeconds": IMAGE_PULL_GRACE_SECONDS},
        **ON_REAL_NODE,
        "resources": {"requests": {"cpu": "50m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
        "ray": {"enabled": True, "image": {"pullPolicy": "Never"}, **ON_REAL_NODE,
                "resources": {"requests": {"cpu": "100m", "memory": "512Mi"}, "limits": {"memory": "2Gi"}}},
    }))
    cp.kubectl("create", "namespace", SYSTEM)
    cp.kubectl("label", "namespace", SYSTEM, RESTRICTED)
    wait_for("default SA", lambda: cp.kubectl("get", "sa", "default", "-n", SYSTEM, check=False).returncode == 0, 30,
             interval=0.2)
    try:
        helm("install", RELEASE, str(CHART), "-n", SYSTEM, "-f", str(values), "--wait", "--timeout", "240s")
    except AssertionError as error:
        raise AssertionError(f"{error}\n{describe(cp, SYSTEM)}") from None
    installed = time.monotonic()
    print(f"\ntandem: waited {loaded - started:.0f}s for the images' import, helm install --wait {installed - loaded:.0f}s")
    yield cp, node
    # Not waited for: the session's node is stopped next, and its stop kills and removes every
    # container and checks that nothing is left, so waiting out the pods' grace periods here
    # (about a minute) would only delay that.
    helm("uninstall", RELEASE, "-n", SYSTEM, "--timeout", "120s", check=False)
    cp.kubectl("delete", "namespace", SYSTEM, "--wait=false", check=False)
    shutil.rmtree(VOLUMES, ignore_errors=True)


def shared_claim(real_cluster, e2e_namespace):
    """A ReadWriteMany claim bound to a hostPath PersistentVolume: files that outlive the pods,
    shared by every pod of the namespace. Returns (claim name, its directory on the host)."""
    cp, _ = real_cluster
    ns = e2e_namespace
    directory = VOLUMES / ns
    directory.mkdir(parents=True)
    os.chown(directory, 1000, 1000)  # the workers' user; hostPath volumes get no fsGroup
    pv = f"shared-{ns}"
    cp.kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": pv},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteMany"], "storageClassName": "",
                 "persistentVolumeReclaimPolicy": "Retain", "hostPath": {"path": str(directory), "type": "Directory"},
                 "claimRef": {"namespace": ns, "name": "shared"}}}))
    apply(cp, ns, {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "shared"},
                   "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "", "volumeName": pv,
                            "resources": {"requests": {"storage": "1Gi"}}}})
    wait_for("the claim bound", lambda: get_json(cp, "pvc", "shared", "-n", ns)["status"].get("phase") == "Bound", 60)
    yield "shared", directory
    cp.kubectl("delete", "namespace", ns, "--wait=true", "--timeout=120s", check=False)
    cp.kubectl("delete", "pv", pv, "--wait=false", check=False)
    shutil.rmtree(directory, ignore_errors=True)
