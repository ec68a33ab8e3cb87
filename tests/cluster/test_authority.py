"""The operator's authority and the admin policy on the real control plane,
with the chart installed by helm: the can-i table of docs/security.md asked of the API server in
both modes, the admission policy refusing the operator's account anything but Tandem's owned
children, refused specs failing at `kubectl apply` with the rule's line, and the real operator
(holding the chart's ServiceAccount token and reading the chart's policy ConfigMap) running a
compliant job under all of it and refusing a hostile one that admission did not see.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from tandem.api.admin_policy import AdminPolicy, violations
from tandem.api.model import TrainingJob
from tandem.contract import REASON_REFUSED_BY_ADMIN_POLICY
from tests.conftest import REPO
from tests.support.controlplane import create_namespace
from tests.support.helm import CHART
from tests.support.kwok import job_document
from tests.support.waiting import wait_for

from .operator_fixture import Operator, get
from .test_install import (  # noqa: F401 - helm is a fixture
    RELEASE,
    SA,
    SYSTEM,
    helm,
    phase,
    run_a_job,
    service_account_kubeconfig,
)

AS_OPERATOR = f"--as=system:serviceaccount:{SYSTEM}:{SA}"
SECURITY = REPO / "docs" / "security.md"
TABLE_HEADING = "### What the operator's ServiceAccount may do"
CHILDREN_POLICY = f"ValidatingAdmissionPolicy '{RELEASE}-operator-children'"
CHILDREN_PODS_POLICY = f"ValidatingAdmissionPolicy '{RELEASE}-operator-children-pods'"
ADMIN_POLICY = f"ValidatingAdmissionPolicy '{RELEASE}-admin-policy'"

#: One hostile podTemplate per rule family of the admin policy.
HOSTILE = {
    "hostPath": {"volumes": [{"name": "root", "hostPath": {"path": "/"}}]},
    "secret volume": {"volumes": [{"name": "db", "secret": {"secretName": "db"}}]},
    "privileged": {"containerSecurityContext": {"privileged": True}},
    "root": {"securityContext": {"runAsUser": 0}},
    "foreign account": {"serviceAccountName": "cluster-admin-bot"},
    "tolerate-all": {"tolerations": [{"operator": "Exists"}]},
    "control plane": {"nodeSelector": {"node-role.kubernetes.io/control-plane": ""}},
    "priority class": {"priorityClassName": "system-node-critical"},
}


def can_i_table() -> list[tuple[list[str], str, bool, bool]]:
    """(can-i arguments, namespace, cluster-wide answer, namespaced answer) for each row of the doc."""
    section = SECURITY.read_text().split(TABLE_HEADING, 1)[1]
    rows: list[tuple[list[str], str, bool, bool]] = []
    for line in section.splitlines():
        if line.startswith("| `"):
            request, namespace, cluster_wide, namespaced = (cell.strip() for cell in line.strip().strip("|").split("|"))
            assert {cluster_wide, namespaced} <= {"yes", "no"}, line
            rows.append((request.strip("`").split(), namespace, cluster_wide == "yes", namespaced == "yes"))
        elif rows and not line.startswith("|"):
            break
    return rows


@pytest.fixture(scope="module")
def namespaces(control_plane):
    """A namespace for TrainingJobs and an unwatched one, both `restricted`."""
    suffix = uuid.uuid4().hex[:6]
    names = {"watched": f"authority-a-{suffix}", "unwatched": f"authority-other-{suffix}"}
    for name in names.values():
        create_namespace(control_plane, name, "restricted")
    yield names
    for name in names.values():
        control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="module")
def release(control_plane, helm, namespaces):  # noqa: F811 - helm is the imported fixture
    """The chart installed cluster-wide with its defaults, once for the module."""
    control_plane.kubectl("create", "namespace", SYSTEM, check=False)
    control_plane.kubectl("label", "namespace", SYSTEM, "pod-security.kubernetes.io/enforce=restricted", "--overwrite")
    helm("install", RELEASE, str(CHART), "-n", SYSTEM, "--wait", "--timeout", "60s")
    yield RELEASE
    helm("uninstall", RELEASE, "-n", SYSTEM, "--wait", "--timeout", "60s", check=False)
    control_plane.kubectl("delete", "namespace", SYSTEM, "--wait=false", check=False)
    wait_for(f"namespace {SYSTEM} gone",
             lambda: control_plane.kubectl("get", "namespace", SYSTEM, check=False).returncode != 0, timeout=60)


def policy_dir(control_plane, path: Path) -> str:
    """The chart's ConfigMap as the operator pod sees it mounted: one file per key."""
    config_map = get(control_plane, SYSTEM, "configmap", f"{RELEASE}-admin-policy")
    path.mkdir()
    for key, value in config_map["data"].items():
        (path / key).write_text(value)
    assert AdminPolicy.from_data(config_map["data"]) == AdminPolicy()  # the chart's defaults are the code's
    return str(path)


def apply(control_plane, namespace: str, document: dict, *extra: str):
    return control_plane.kubectl("apply", "-n", namespace, "-f", "-", *extra, input=json.dumps(document), check=False)


def hostile_job(name: str, pod_template: dict) -> dict:
    document = job_document(name, run_seconds=1)
    document["spec"]["podTemplate"].update(pod_template)
    return document


# ----------------------------------------------------------------- the admission policies


def test_operator_account_creates_only_owned_labelled_children(control_plane, release, namespaces):
    watched = namespaces["watched"]
    owner = job_document("owner", run_seconds=1)
    control_plane.kubectl("apply", "-n", watched, "-f", "-", input=json.dumps(owner))
    uid = get(control_plane, watched, "tj", "owner")["metadata"]["uid"]
    labels = {"tandem.dev/job-name": "owner", "app.kubernetes.io/managed-by": "tandem"}
    owned = [{"apiVersion": "tandem.dev/v1alpha1", "kind": "TrainingJob", "name": "owner", "uid": uid,
              "controller": True, "blockOwnerDeletion": True}]

    def job(namespace: str, meta: dict, **pod_fields) -> dict:
        pod = {"restartPolicy": "Never", "automountServiceAccountToken": False,
               "containers": [{"name": "c", "image": "busybox", "command": ["true"]}], **pod_fields}
        return {"apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"name": f"j-{uuid.uuid4().hex[:6]}", "namespace": namespace, **meta},
                "spec": {"template": {"spec": pod}}}

    def create(obj: dict, *as_user: str):
        return control_plane.kubectl("create", "--dry-run=server", "-f", "-", *as_user, input=json.dumps(obj),
                                     check=False)

    # RBAC lets the account create Jobs in kube-system (cluster-wide mode); the policy refuses them.
    assert control_plane.kubectl("auth", "can-i", "create", "jobs.batch", "-n", "kube-system", AS_OPERATOR,
                                 check=False).stdout.strip() == "yes"
    bare = job("kube-system", {})
    wait_for("the children policy in force", lambda: create(bare, AS_OPERATOR).returncode != 0, timeout=30)
    refused = create(bare, AS_OPERATOR)
    assert CHILDREN_POLICY in refused.stderr and "tandem.dev/job-name" in refused.stderr, refused.stderr
    # Labelled but owned by nobody, in the watched namespace: refused, naming the owner rule.
    refused = create(job(watched, {"labels": labels}), AS_OPERATOR)
    assert CHILDREN_POLICY in refused.stderr and "controlled by the TrainingJob" in refused.stderr, refused.stderr
    # Owned, but by a TrainingJob its label does not name: refused.
    refused = create(job(watched, {"labels": {**labels, "tandem.dev/job-name": "other"}, "ownerReferences": owned}),
                     AS_OPERATOR)
    assert CHILDREN_POLICY in refused.stderr, refused.stderr
    # Any other kind the account may create: a free-standing Service.
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": watched},
               "spec": {"ports": [{"port": 80}]}}
    refused = create(service, AS_OPERATOR)
    assert CHILDREN_POLICY in refused.stderr, refused.stderr
    # Labelled and owned, but a pod a TrainingJob could not ask for: refused, naming the field.
    tandems = {"labels": labels, "ownerReferences": owned}
    for pod_fields, field in (({"volumes": [{"name": "h", "hostPath": {"path": "/"}}]}, "spec.template.spec.volumes"),
                              ({"hostPID": True}, "host's namespaces"),
                              ({"automountServiceAccountToken": True}, "automountServiceAccountToken"),
                              ({"serviceAccountName": "cluster-admin-bot"}, "spec.template.spec.serviceAccountName"),
                              ({"containers": [{"name": "c", "image": "busybox", "securityContext": {"privileged": True}}]},
                               "spec.template.spec.{containers,initContainers,ephemeralContainers}[*]"
                               ".securityContext.privileged"),
                              ({"initContainers": [{"name": "i", "image": "busybox",
                                                    "securityContext": {"privileged": True}}]},
                               "spec.template.spec.{containers,initContainers,ephemeralContainers}[*]"
                               ".securityContext.privileged"),
                              ({"nodeName": "chosen-node"}, "spec.template.spec.nodeName")):
        refused = create(job(watched, tandems, **pod_fields), AS_OPERATOR)
        policy = CHILDREN_POLICY if {"hostPID", "nodeName"} & set(pod_fields) else CHILDREN_PODS_POLICY
        assert policy in refused.stderr and field in refused.stderr, (pod_fields, refused.stderr)
    # What Tandem renders is admitted; and the refusals were the policy's, not RBAC's: the cluster
    # admin creates the bare Job.
    admitted = create(job(watched, tandems), AS_OPERATOR)
    assert admitted.returncode == 0, admitted.stderr
    assert create(bare).returncode == 0


def test_a_workload_priority_is_held_to_the_admin_policy_at_apply_and_on_the_job(control_plane, release, namespaces):
    """spec.priorityClassName (Kueue's WorkloadPriorityClass, docs/queues.md) is held to
    allowedPriorityClasses like the pods' PriorityClass: refused at apply, and the operator's
    account may not put a class the policy does not allow on a Job as Kueue's label."""
    watched = namespaces["watched"]
    document = job_document(f"queued-{uuid.uuid4().hex[:6]}", run_seconds=1)
    document["spec"].update(queueName="gpus", priorityClassName="production")
    (line,) = violations(AdminPolicy(), TrainingJob.from_dict({**document, "metadata": {"name": "x"}}))
    # A dry run each time: an apply let through before the policy was in force would make every
    # later apply a no-op that reaches no admission.
    wait_for("the admin policy in force", lambda: apply(control_plane, watched, document, "--dry-run=server").returncode,
             timeout=30)
    refused = apply(control_plane, watched, document, "--dry-run=server").stderr.strip()
    assert ADMIN_POLICY in refused and refused.endswith(line) and line.startswith("spec.priorityClassName: "), refused

    owner = job_document(f"prio-owner-{uuid.uuid4().hex[:6]}", run_seconds=1)
    control_plane.kubectl("apply", "-n", watched, "-f", "-", input=json.dumps(owner))
    name = owner["metadata"]["name"]
    uid = get(control_plane, watched, "tj", name)["metadata"]["uid"]
    labels = {"tandem.dev/job-name": name, "app.kubernetes.io/managed-by": "tandem"}
    child = {"apiVersion": "batch/v1", "kind": "Job",
             "metadata": {"name": f"j-{uuid.uuid4().hex[:6]}", "namespace": watched, "labels": labels,
                          "ownerReferences": [{"apiVersion": "tandem.dev/v1alpha1", "kind": "TrainingJob", "name": name,
                                               "uid": uid, "controller": True, "blockOwnerDeletion": True}]},
             "spec": {"suspend": True, "template": {"spec": {
                 "restartPolicy": "Never", "automountServiceAccountToken": False,
                 "containers": [{"name": "c", "image": "busybox", "command": ["true"]}]}}}}

    def create(obj: dict):
        return control_plane.kubectl("create", "--dry-run=server", "-f", "-", AS_OPERATOR, input=json.dumps(obj),
                                     check=False)

    prioritised = json.loads(json.dumps(child))
    prioritised["metadata"]["labels"].update({"kueue.x-k8s.io/queue-name": "gpus",
                                              "kueue.x-k8s.io/priority-class": "production"})
    refused = create(prioritised)
    assert CHILDREN_PODS_POLICY in refused.stderr and "kueue.x-k8s.io/priority-class" in refused.stderr, refused.stderr
    del prioritised["metadata"]["labels"]["kueue.x-k8s.io/priority-class"]
    assert create(prioritised).returncode == 0  # queued, without a priority: admitted


def test_policies_type_check_and_kustomize_is_accepted(control_plane, release):
    """The API server compiles and type-checks every expression (against the CRD's schema for
    TrainingJobs) without a warning; manifests/ is accepted as it stands (server dry run)."""
    for name in (f"{RELEASE}-admin-policy", f"{RELEASE}-operator-children", f"{RELEASE}-operator-children-pods"):
        def checked(name: str = name) -> dict | None:
            policy = json.loads(control_plane.kubectl("get", "validatingadmissionpolicy", name, "-o", "json").stdout)
            return (policy.get("status") or {}).get("typeChecking")
        wait_for(f"{name} type-checked", lambda: checked() is not None, timeout=30)
        assert not checked().get("expressionWarnings"), checked()
    result = control_plane.kubectl("apply", "--dry-run=server", "-k", str(REPO / "manifests"), check=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("what", HOSTILE)
def test_refused_specs_fail_at_apply_naming_the_field(control_plane, release, namespaces, what):
    document = hostile_job(f"hostile-{uuid.uuid4().hex[:6]}", HOSTILE[what])
    (line,) = violations(AdminPolicy(), TrainingJob.from_dict({**document, "metadata": {"name": "x"}}))
    wait_for("the admin policy in force", lambda: apply(control_plane, namespaces["watched"], document).returncode != 0,
             timeout=30)
    result = apply(control_plane, namespaces["watched"], document)
    assert result.returncode != 0
    message = result.stderr.strip()
    assert "\n" not in message and ADMIN_POLICY in message and message.endswith(line), message
    assert get(control_plane, namespaces["watched"], "tj", document["metadata"]["name"]) is None


def test_compliant_job_runs_under_the_policies(control_plane, release, namespaces, tmp_path):
    """The real operator as the ServiceAccount, with the chart's policy: its children pass the
    children policy (any refusal would show as `forbidden`/`denied` in its log) and run."""
    kubeconfig = service_account_kubeconfig(control_plane, tmp_path / "sa.kubeconfig")
    log = run_a_job(control_plane, kubeconfig, tmp_path / "operator.log", namespaces["watched"],
                    "--admin-policy", policy_dir(control_plane, tmp_path / "policy"))
    assert "denied request" not in log, log
    pod_spec = get(control_plane, namespaces["watched"], "job", "via-chart")["spec"]["template"]["spec"]
    assert pod_spec["automountServiceAccountToken"] is False


def test_operator_refuses_what_admission_did_not_see(control_plane, helm, release, namespaces, tmp_path):  # noqa: F811
    """With the admission policies switched off, a hostile spec is stored; the operator marks it
    Invalid with the rule's line and creates nothing."""
    watched = namespaces["watched"]
    helm("upgrade", RELEASE, str(CHART), "-n", SYSTEM, "--reuse-values", "--set", "admission.enabled=false",
         "--wait", "--timeout", "60s")
    try:
        document = hostile_job("unseen", HOSTILE["hostPath"])
        wait_for("the admin policy gone", lambda: apply(control_plane, watched, document).returncode == 0, timeout=30)
        operator = Operator(service_account_kubeconfig(control_plane, tmp_path / "sa.kubeconfig"),
                            tmp_path / "operator.log", SYSTEM,
                            "--admin-policy", policy_dir(control_plane, tmp_path / "policy")).start()
        try:
            wait_for("Invalid", lambda: phase(control_plane, watched, "unseen") == "Invalid", timeout=60)
        finally:
            operator.stop()
        status = get(control_plane, watched, "tj", "unseen")["status"]
        (condition,) = [c for c in status["conditions"] if c["type"] == "Invalid"]
        assert condition["reason"] == REASON_REFUSED_BY_ADMIN_POLICY
        assert condition["message"].startswith("spec.podTemplate.volumes: hostPath volumes are refused")
        assert get(control_plane, watched, "job", "unseen") is None
        assert get(control_plane, watched, "service", "unseen") is None
    finally:
        control_plane.kubectl("delete", "tj", "unseen", "-n", watched, "--wait=false", check=False)
        helm("upgrade", RELEASE, str(CHART), "-n", SYSTEM, "--reuse-values", "--set", "admission.enabled=true",
             "--wait", "--timeout", "60s")


# ------------------------------------------------------------------------ the can-i table


def ask(control_plane, request: list[str], namespace: str | None) -> bool:
    args = ["auth", "can-i", *request, AS_OPERATOR] + (["-n", namespace] if namespace else [])
    result = control_plane.kubectl(*args, check=False)
    answer = result.stdout.strip()
    assert answer in ("yes", "no"), result.stdout + result.stderr
    return answer == "yes"


def check_table(control_plane, namespaces: dict[str, str], column: int) -> None:
    where = {**namespaces, "kube-system": "kube-system", SYSTEM: SYSTEM, "(cluster)": None}
    rows = can_i_table()
    assert len(rows) >= 30
    wrong = [f"{' '.join(request)} in {namespace}: the doc says {'yes' if answers[column] else 'no'}"
             for request, namespace, *answers in rows
             if ask(control_plane, request, where[namespace]) != answers[column]]
    assert not wrong, "docs/security.md's can-i table is wrong:\n" + "\n".join(wrong)


def test_can_i_table(control_plane, helm, release, namespaces):  # noqa: F811
    check_table(control_plane, namespaces, 0)
    helm("upgrade", RELEASE, str(CHART), "-n", SYSTEM, "--reuse-values",
         "--set", f"watchNamespaces={{{namespaces['watched']}}}", "--wait", "--timeout", "60s")
    try:
        check_table(control_plane, namespaces, 1)
    finally:
        helm("upgrade", RELEASE, str(CHART), "-n", SYSTEM, "--reset-values",
             "--wait", "--timeout", "60s")


def test_the_policies_hold_without_the_settings_configmap(control_plane, release, namespaces):
    """The policies take no parameter: with the operator's ConfigMap gone, the admin still
    creates anything, the operator's account is still refused a bare Job, and a hostile
    TrainingJob is still refused at apply. (A parameter once made a lost ConfigMap refuse every
    create in the cluster, and after a reinstall the API server's stale view of it refused every
    TrainingJob for minutes; the settings are now CEL literals in the policies themselves.)"""
    config_map = f"{RELEASE}-admin-policy"
    saved = get(control_plane, SYSTEM, "configmap", config_map)
    control_plane.kubectl("delete", "configmap", config_map, "-n", SYSTEM)
    try:
        scratch = f"authority-lost-{uuid.uuid4().hex[:6]}"
        assert control_plane.kubectl("create", "namespace", scratch, "--dry-run=server", check=False).returncode == 0
        bare = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "bare", "namespace": "kube-system"},
                "spec": {"template": {"spec": {"restartPolicy": "Never", "automountServiceAccountToken": False,
                                               "containers": [{"name": "c", "image": "busybox"}]}}}}
        refused = control_plane.kubectl("create", "--dry-run=server", "-f", "-", AS_OPERATOR,
                                        input=json.dumps(bare), check=False)
        assert refused.returncode != 0 and CHILDREN_POLICY in refused.stderr, refused.stderr
        hostile = apply(control_plane, namespaces["watched"], hostile_job("lost-cm", HOSTILE["hostPath"]),
                        "--dry-run=server")
        assert hostile.returncode != 0 and ADMIN_POLICY in hostile.stderr, hostile.stderr
        compliant = apply(control_plane, namespaces["watched"], job_document("lost-cm-ok", run_seconds=1),
                          "--dry-run=server")
        assert compliant.returncode == 0, compliant.stderr
    finally:
        restored = {k: saved[k] for k in ("apiVersion", "kind", "data")}
        restored["metadata"] = {k: saved["metadata"][k] for k in ("name", "namespace", "labels", "annotations")
                                if k in saved["metadata"]}
        control_plane.kubectl("apply", "-f", "-", input=json.dumps(restored))
