"""End to end: a hostile tenant in namespace A against a job in namespace B and the operator.

One scenario on the real control plane, with the real operator (watching A and B, with the
figures gateway over a real Ray) and the admission policies of `manifests/admission.yaml` (the
same objects the chart renders: the admin policy on TrainingJobs, with its ConfigMap). kwok pods
run no code, so the hostile job's code is played by this test holding exactly what such a job
holds: its own write token, from the Secret the operator made for it in A. The tenant's user is
`tenant-a`, impersonated, with the built-in `edit` role plus TrainingJobs in A and nothing in B.

Both jobs are called `victim`: the hostile one differs from B's only by its namespace (and uid),
so every refusal below rests on the namespace boundary, not on a name that happens to differ.

- metrics: A's token POSTs figures for B's job, reads and deletes B's figures -> 403;
  B's status keeps only the figures of its own workers.
- confused deputy: TrainingJobs in A asking for the operator's ServiceAccount, a
  hostPath, privileged containers, tolerate-all -> refused at apply, one line naming the field;
  nothing stored.
- network: B's NetworkPolicy admits only pods of B's namespace (a bare podSelector),
  so A's pods, labelled exactly like B's workers, are not among its sources; A's own policy
  selects A's workers only. Enforcement cannot be shown here: kwok pods have no network and the
  test cluster's CNI does not implement NetworkPolicy (docs/security.md, "Network").
- ownership: a Service and a NetworkPolicy made in A under the name of A's next job,
  before it exists -> that job holds NameConflict, nothing of it is created, the squatted
  objects are untouched.
- the tenant can create nothing in B and read none of B's Secrets (`kubectl auth can-i`).

Then: B's job, its status and its children are as they were, and the operator still works (a
new job in B runs, /healthz is green).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid

import pytest
import yaml

from tandem._sys.ports import free_port
from tandem.api.admin_policy import AdminPolicy, violations
from tandem.api.model import TrainingJob
from tandem.figures import wire
from tests.conftest import REPO
from tests.support.controlplane import create_namespace
from tests.support.kwok import job_document
from tests.support.waiting import wait_for

from .operator_fixture import Operator, get
from .test_authority import ADMIN_POLICY, HOSTILE, hostile_job
from .test_network_policy import pod_names, selector_of
from .test_operator_metrics import gateway, start_reporter, worker_env  # noqa: F401 - gateway is a fixture
from .test_operator_runtime import http_get
from .test_ownership import phase, true_condition

TENANT = "tenant-a"
AS_TENANT = f"--as={TENANT}"
ADMISSION = REPO / "manifests" / "admission.yaml"
#: The confused deputy's podTemplates (HOSTILE has them all; these four suffice).
DEPUTY = {
    "operator-account": {"serviceAccountName": "tandem-operator"},
    "hostpath": HOSTILE["hostPath"],
    "privileged": HOSTILE["privileged"],
    "tolerate-all": HOSTILE["tolerate-all"],
}


@pytest.fixture
def admission(control_plane):
    """The admin policy as manifests/ ships it, removed afterwards (the chart's tests install the
    same names with helm)."""
    control_plane.kubectl("create", "namespace", "tandem-system", check=False)
    control_plane.kubectl("apply", "-f", str(ADMISSION))
    yield
    # Bindings first, the ConfigMap last: never a binding whose parameter is gone.
    for document in reversed(list(yaml.safe_load_all(ADMISSION.read_text()))):
        meta = document["metadata"]
        control_plane.kubectl("delete", document["kind"].lower(), meta["name"],
                              *(("-n", meta["namespace"]) if "namespace" in meta else ()),
                              "--ignore-not-found", "--wait=true")


@pytest.fixture
def tenancy(control_plane, crd):
    """Namespaces A (the tenant's) and B (the victim's); `tenant-a` may edit A only."""
    suffix = uuid.uuid4().hex[:6]
    a, b = create_namespace(control_plane, f"tenant-a-{suffix}"), create_namespace(control_plane, f"tenant-b-{suffix}")
    control_plane.kubectl("create", "rolebinding", "tenant-edit", "--clusterrole=edit", f"--user={TENANT}", "-n", a)
    control_plane.kubectl("create", "role", "trainingjobs", "--verb=*", "--resource=trainingjobs.tandem.dev", "-n", a)
    control_plane.kubectl("create", "rolebinding", "trainingjobs", "--role=trainingjobs", f"--user={TENANT}", "-n", a)
    yield a, b
    for name in (a, b):
        control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


def as_tenant(control_plane, namespace: str, document: dict):
    return control_plane.kubectl("apply", "-n", namespace, "-f", "-", AS_TENANT, input=json.dumps(document),
                                 check=False)


def can_i(control_plane, namespace: str, *request: str) -> bool:
    answer = control_plane.kubectl("auth", "can-i", *request, "-n", namespace, AS_TENANT, check=False).stdout.strip()
    assert answer in ("yes", "no"), answer
    return answer == "yes"


def gateway_answer(url: str, token: str | None, method: str = "GET", body: bytes | None = None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code


def metrics_of(control_plane, namespace: str, name: str) -> dict:
    return ((get(control_plane, namespace, "trainingjob", name) or {}).get("status") or {}).get("metrics") or {}


def children(control_plane, namespace: str, name: str) -> dict:
    """What must not move: each child's uid and spec (the Job's status moves with its pods) and,
    for those nobody but their owner writes, the resourceVersion."""
    found = {}
    job = get(control_plane, namespace, "job", name) or {}
    env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    secret = env["TANDEM_METRICS_TOKEN"]["valueFrom"]["secretKeyRef"]["name"]  # the operator's own (test_operator_metrics)
    for kind, key in (("job", name), ("service", name), ("networkpolicy", name), ("secret", secret)):
        obj = get(control_plane, namespace, kind, key)
        assert obj is not None, f"{kind} {key} missing in {namespace}"
        found[kind] = (obj["metadata"]["uid"], obj.get("spec"), None if kind == "job" else obj["metadata"]["resourceVersion"])
    return found


def test_a_hostile_tenant_changes_nothing_of_another_namespace_and_the_operator_keeps_working(
        control_plane, crd, tenancy, admission, gateway, tmp_path):  # noqa: F811 - gateway is the imported fixture
    a, b = tenancy
    health = free_port()
    control_plane.kubectl("create", "namespace", "lease-hostile-tenant", check=False)
    operator = Operator(control_plane.kubeconfig, tmp_path / "operator.log", "lease-hostile-tenant", "-n", a, "-n", b,
                        "--metrics-address", gateway.address, "--metrics-key-file", str(gateway.key_file))
    operator.args[:2] = ["--health-port", str(health)]
    operator.start()
    reporters = []
    try:
        # The victim in B, running with figures from its own two workers.
        victim = job_document("victim", workers=2, run_seconds=600)
        victim["spec"]["metrics"] = {"enabled": True}
        control_plane.kubectl("apply", "-n", b, "-f", "-", input=json.dumps(victim))
        victim_env = worker_env(control_plane, b, "victim", gateway.key)
        reporters = [start_reporter(victim_env, b, "victim", index) for index in (0, 1)]
        wait_for("B's job Running", lambda: phase(control_plane, b, "victim") == "Running", timeout=60)
        before = wait_for("B's figures", lambda: (m := metrics_of(control_plane, b, "victim")).get("available")
                          and len(m.get("perWorker", [])) == 2 and m, timeout=120, interval=2)
        victim_before = get(control_plane, b, "trainingjob", "victim")
        victim_uid = victim_before["metadata"]["uid"]
        victim_children = children(control_plane, b, "victim")

        # The tenant's own job in A, by the same name, applied as the tenant.
        hostile = job_document("victim", workers=2, run_seconds=600)
        hostile["spec"]["metrics"] = {"enabled": True}
        applied = as_tenant(control_plane, a, hostile)
        assert applied.returncode == 0, applied.stderr
        token = worker_env(control_plane, a, "victim", gateway.key)["TANDEM_METRICS_TOKEN"]

        # Metrics: A's token is good for A's job, and for nothing of B's.
        own = gateway_answer(gateway.address + wire.records_path(a, "victim"), token, "POST",
                             wire.encode(0, 0, [[1.0, 64, 0.1, None]]))
        assert own == 204
        forged = wire.encode(0, 0, [[time.time() + i, 10**9, 0.001, None] for i in range(100)])
        assert gateway_answer(gateway.address + wire.records_path(b, "victim"), token, "POST", forged) == 403
        b_figures = gateway.address + wire.job_path(b, "victim", victim_uid)
        assert gateway_answer(b_figures, token) == 403
        assert gateway_answer(b_figures, None) == 401
        assert gateway_answer(b_figures, token, "DELETE") == 403

        # Confused deputy: the operator's account, a node's files, privilege, every taint: refused at apply.
        wait_for("the admin policy in force", lambda: as_tenant(control_plane, a, hostile_job(
            "probe", DEPUTY["hostpath"])).returncode != 0, timeout=30)
        for what, pod_template in DEPUTY.items():
            document = hostile_job(f"deputy-{what}", pod_template)
            (line,) = violations(AdminPolicy(), TrainingJob.from_dict({**document, "metadata": {"name": "x"}}))
            refused = as_tenant(control_plane, a, document)
            message = refused.stderr.strip()
            assert refused.returncode != 0 and "\n" not in message, (what, message)
            assert ADMIN_POLICY in message and message.endswith(line), (what, message)
            assert get(control_plane, a, "trainingjob", document["metadata"]["name"]) is None

        # Network: B's policy admits B's workers of B's namespace only; A's policy, A's only.
        a_pods = wait_for("A's 2 pods", lambda: len(p := pod_names(control_plane, a, "tandem.dev/job-name=victim")) == 2
                          and p, timeout=60)
        b_pods = pod_names(control_plane, b, "tandem.dev/job-name=victim")
        for namespace, pods in ((a, a_pods), (b, b_pods)):
            spec = get(control_plane, namespace, "networkpolicy", "victim")["spec"]
            (rule,) = spec["ingress"]
            (source,) = rule["from"]
            assert set(source) == {"podSelector"}, source  # no namespaceSelector, no ipBlock: its namespace only
            assert pod_names(control_plane, namespace, selector_of(spec["podSelector"]["matchLabels"])) == pods
            assert pod_names(control_plane, namespace, selector_of(source["podSelector"]["matchLabels"])) == pods
        # A's pods carry B's policy's source labels: only the namespace keeps them out.
        b_source = get(control_plane, b, "networkpolicy", "victim")["spec"]["ingress"][0]["from"][0]["podSelector"]
        assert pod_names(control_plane, a, selector_of(b_source["matchLabels"])) == a_pods

        # Ownership: the names of A's next job squatted before it exists.
        squat_labels = {"app": "theirs"}
        service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "squat", "labels": squat_labels},
                   "spec": {"selector": squat_labels, "ports": [{"port": 80}]}}
        policy = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                  "metadata": {"name": "squat", "labels": {**squat_labels, "tandem.dev/job-name": "squat"}},
                  "spec": {"podSelector": {}, "ingress": [{}], "policyTypes": ["Ingress"]}}
        for obj in (service, policy):
            assert as_tenant(control_plane, a, obj).returncode == 0
        squatted = {kind: get(control_plane, a, kind, "squat")["metadata"]["resourceVersion"]
                    for kind in ("service", "networkpolicy")}
        assert as_tenant(control_plane, a, job_document("squat", run_seconds=600)).returncode == 0
        held = wait_for("NameConflict", lambda: true_condition(control_plane, a, "squat", "NameConflict"), timeout=30)
        assert "squat" in held["message"] and "not this TrainingJob's" in held["message"], held
        time.sleep(3)  # a few more passes
        assert phase(control_plane, a, "squat") == "Pending"
        assert {kind: get(control_plane, a, kind, "squat")["metadata"]["resourceVersion"]
                for kind in ("service", "networkpolicy")} == squatted
        assert get(control_plane, a, "job", "squat") is None

        # The tenant's reach: everything in A, nothing in B.
        for request in (["create", "trainingjobs.tandem.dev"], ["create", "services"], ["create", "pods"],
                        ["patch", "networkpolicies"], ["get", "secrets"], ["delete", "trainingjobs.tandem.dev"]):
            assert can_i(control_plane, a, *request), request
            assert not can_i(control_plane, b, *request), request

        # Nothing of B's changed: its job, its children, its figures (its own workers' only).
        time.sleep(5)  # the operator's next reads of the gateway
        obj = get(control_plane, b, "trainingjob", "victim")
        assert obj["metadata"]["uid"] == victim_uid and obj["spec"] == victim_before["spec"]
        assert obj["metadata"]["generation"] == victim_before["metadata"]["generation"]
        assert obj["status"]["phase"] == "Running"
        assert children(control_plane, b, "victim") == victim_children
        after = metrics_of(control_plane, b, "victim")
        assert after.get("available") and {w["index"] for w in after["perWorker"]} == {0, 1}, after
        assert not after.get("reason"), after
        # Two workers of 64 samples per >= 20 ms step; the forged batch claimed 10^9 samples a ms.
        assert 0 < after["throughput"] < 2 * 64 / 0.02 and 0 < before["throughput"] < 2 * 64 / 0.02, (before, after)

        # The operator keeps working: a new job in B runs, /healthz is green.
        control_plane.kubectl("apply", "-n", b, "-f", "-", input=json.dumps(job_document("after", run_seconds=600)))
        wait_for("a new job in B Running", lambda: phase(control_plane, b, "after") == "Running", timeout=60)
        assert http_get(f"http://127.0.0.1:{health}/healthz").startswith("ok"), operator.log()[-3000:]
    finally:
        for process in reporters:
            process.kill()
        operator.stop()
