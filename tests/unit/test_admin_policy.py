"""The admin policy: every rule refuses its hostile podTemplate with one line
naming the field, passes a compliant one and opens with its setting; the operator refuses a
refused spec (Invalid, nothing created); the chart's defaults are the code's; the shipped CEL is
the generated one; worker pods get no token; a termination message never reaches status.

The CEL itself is checked by the real API server in tests/cluster/test_authority.py."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

import pytest
import yaml

from tandem.api.admin_policy import RULES, AdminPolicy, violations
from tandem.api.admission import admission_objects, child_pod_validations, shipped_files
from tandem.api.model import TrainingJob
from tandem.contract import JOB_NAME_LABEL, MANAGED_BY_LABEL, REASON_REFUSED_BY_ADMIN_POLICY
from tandem.controller.main import read_admin_policy
from tandem.controller.observed import Observed, observe
from tandem.controller.reconcile import reconcile
from tandem.errors import UsageError
from tandem.render import render
from tests.conftest import REPO
from tests.support.specs import spec

from .test_ownership import owned

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=timezone.utc)
SECRET_VOLUME = {"name": "s", "secret": {"secretName": "db"}}
EXISTS_ALL = {"operator": "Exists"}

# (rule's field, refused podTemplate, compliant podTemplate, the setting that opens the rule or None)
CASES = [
    ("spec.podTemplate.serviceAccountName", {"serviceAccountName": "ci-admin"}, {},
     {"allowed_service_accounts": ("ci-admin",)}),
    ("spec.podTemplate.priorityClassName", {"priorityClassName": "system-cluster-critical"}, {},
     {"allowed_priority_classes": ("system-cluster-critical",)}),
    ("spec.podTemplate.nodeSelector", {"nodeSelector": {"node-role.kubernetes.io/control-plane": ""}},
     {"nodeSelector": {"pool": "gpu"}}, {"reserved_node_keys": ()}),
    ("spec.podTemplate.tolerations",
     {"tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}]},
     {"tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}]}, {"reserved_node_keys": ()}),
    ("spec.podTemplate.tolerations", {"tolerations": [EXISTS_ALL]},
     {"tolerations": [{"key": "pool", "operator": "Exists"}]}, {"allow_tolerate_all": True}),
    ("spec.podTemplate.volumes", {"volumes": [{"name": "h", "hostPath": {"path": "/"}}]},
     {"volumes": [{"name": "d", "emptyDir": {}}]}, {"allow_host_path": True}),
    ("spec.podTemplate.volumes", {"volumes": [SECRET_VOLUME]},
     {"volumes": [{"name": "c", "persistentVolumeClaim": {"claimName": "data"}}]}, {"allow_secret_volumes": True}),
    ("spec.podTemplate.volumes",
     {"volumes": [{"name": "t", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}}]},
     {"volumes": [{"name": "p", "projected": {"sources": [{"configMap": {"name": "c"}}]}}]},
     {"allow_secret_volumes": True}),
    ("spec.podTemplate.containerSecurityContext.privileged", {"containerSecurityContext": {"privileged": True}},
     {"containerSecurityContext": {"privileged": False, "runAsNonRoot": True}}, {"allow_privileged": True}),
    ("spec.podTemplate.containerSecurityContext.allowPrivilegeEscalation",
     {"containerSecurityContext": {"allowPrivilegeEscalation": True}},
     {"containerSecurityContext": {"allowPrivilegeEscalation": False}}, {"allow_privileged": True}),
    ("spec.podTemplate.containerSecurityContext.capabilities.add",
     {"containerSecurityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}},
     {"containerSecurityContext": {"capabilities": {"drop": ["ALL"]}}}, {"allow_privileged": True}),
    ("spec.podTemplate.containerSecurityContext.capabilities.drop",
     {"containerSecurityContext": {"capabilities": {"drop": ["NET_RAW"]}}},
     {"containerSecurityContext": {"capabilities": {"drop": ["ALL"]}}}, {"allow_privileged": True}),
    ("spec.podTemplate.containerSecurityContext.procMount", {"containerSecurityContext": {"procMount": "Unmasked"}},
     {"containerSecurityContext": {"procMount": "Default"}}, {"allow_privileged": True}),
    *[case for context in ("securityContext", "containerSecurityContext") for case in (
        (f"spec.podTemplate.{context}.seccompProfile.type", {context: {"seccompProfile": {"type": "Unconfined"}}},
         {context: {"seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}}}, {"allow_privileged": True}),
        (f"spec.podTemplate.{context}.appArmorProfile.type", {context: {"appArmorProfile": {"type": "Unconfined"}}},
         {context: {"appArmorProfile": {"type": "RuntimeDefault"}}}, {"allow_privileged": True}),
        (f"spec.podTemplate.{context}.seLinuxOptions.type", {context: {"seLinuxOptions": {"type": "spc_t"}}},
         {context: {"seLinuxOptions": {"type": "container_t", "level": "s0:c1,c2"}}}, {"allow_privileged": True}),
        (f"spec.podTemplate.{context}.seLinuxOptions.user", {context: {"seLinuxOptions": {"user": "system_u"}}},
         {context: {"seLinuxOptions": {"level": "s0:c1,c2"}}}, {"allow_privileged": True}),
        (f"spec.podTemplate.{context}.seLinuxOptions.role", {context: {"seLinuxOptions": {"role": "system_r"}}},
         {context: {"seLinuxOptions": {}}}, {"allow_privileged": True}),
    )],
    ("spec.podTemplate.annotations", {"annotations": {"container.apparmor.security.beta.kubernetes.io/worker": "unconfined"}},
     {"annotations": {"team": "vision"}}, {"allow_privileged": True}),
    ("spec.podTemplate.securityContext.runAsUser", {"securityContext": {"runAsUser": 0}},
     {"securityContext": {"runAsUser": 1000}}, {"allow_run_as_root": True}),
    ("spec.podTemplate.containerSecurityContext.runAsUser", {"containerSecurityContext": {"runAsUser": 0}},
     {"containerSecurityContext": {"runAsUser": 1000}}, {"allow_run_as_root": True}),
    ("spec.podTemplate.securityContext.runAsNonRoot", {"securityContext": {"runAsNonRoot": False}},
     {"securityContext": {"runAsNonRoot": True}}, {"allow_run_as_root": True}),
    ("spec.podTemplate.containerSecurityContext.runAsNonRoot", {"containerSecurityContext": {"runAsNonRoot": False}},
     {"containerSecurityContext": {"runAsNonRoot": True}}, {"allow_run_as_root": True}),
    ("spec.podTemplate.containerSecurityContext",
     {"securityContext": {"fsGroup": 2000}, "containerSecurityContext": {"readOnlyRootFilesystem": True}},
     {"securityContext": {"fsGroup": 2000, "runAsNonRoot": True}, "containerSecurityContext": {}},
     {"allow_run_as_root": True}),
]


def job(pod_template: dict) -> TrainingJob:
    return TrainingJob.from_dict(spec(podTemplate=pod_template))


# (rule's field, refused spec changes, compliant spec changes, the setting that opens the rule): rules
# on fields outside the podTemplate.
SPEC_CASES = [
    ("spec.priorityClassName", {"queueName": "gpus", "priorityClassName": "top"}, {"queueName": "gpus"},
     {"allowed_priority_classes": ("top",)}),
]


@pytest.mark.parametrize(("field", "refused", "compliant", "opened"), SPEC_CASES, ids=[c[0] for c in SPEC_CASES])
def test_each_spec_rule_refuses_with_one_line_naming_the_field(field, refused, compliant, opened):
    policy = AdminPolicy()
    lines = violations(policy, TrainingJob.from_dict(spec(**refused)))
    assert len(lines) == 1 and lines[0].startswith(f"{field}: ") and "adminPolicy." in lines[0], lines
    assert violations(policy, TrainingJob.from_dict(spec(**compliant))) == []
    assert violations(replace(policy, **opened), TrainingJob.from_dict(spec(**refused))) == []


@pytest.mark.parametrize(("field", "refused", "compliant", "opened"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_each_rule_refuses_with_one_line_naming_the_field(field, refused, compliant, opened):
    policy = AdminPolicy()
    lines = violations(policy, job(refused))
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{field}: ") and "adminPolicy." in lines[0] and "\n" not in lines[0]
    assert violations(policy, job(compliant)) == []
    assert violations(replace(policy, **opened), job(refused)) == []


#: The replaced container context of the reproduction: it names no escalation, capability or
#: (allowed) profile setting, and each of its profiles is unconfined.
UNCONFINED = {"runAsNonRoot": True, "seccompProfile": {"type": "Unconfined"}, "seLinuxOptions": {"type": "spc_t"},
              "appArmorProfile": {"type": "Unconfined"}}


def restricted_compliant(pod: dict) -> list[str]:
    """What the restricted Pod Security Standard refuses in a rendered pod spec (its container
    fields, with the pod's as fallback): the checks the API server's Pod Security admission makes."""
    problems = []
    pod_context = pod.get("securityContext") or {}
    for container in pod["containers"]:
        context = container.get("securityContext") or {}
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append("allowPrivilegeEscalation is not false")
        if "ALL" not in (context.get("capabilities") or {}).get("drop", []):
            problems.append("capabilities.drop lacks ALL")
        if set((context.get("capabilities") or {}).get("add") or ()) - {"NET_BIND_SERVICE"}:
            problems.append("capabilities.add")
        seccomp = (context.get("seccompProfile") or pod_context.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"seccomp {seccomp}")
        for options in (context, pod_context):
            if (options.get("appArmorProfile") or {}).get("type", "RuntimeDefault") not in ("RuntimeDefault", "Localhost"):
                problems.append("appArmorProfile")
            if (options.get("seLinuxOptions") or {}).get("type", "") not in ("", "container_t", "container_init_t",
                                                                            "container_kvm_t", "container_engine_t"):
                problems.append("seLinuxOptions.type")
        if context.get("privileged") is True:
            problems.append("privileged")
        if context.get("runAsNonRoot") is not True and pod_context.get("runAsNonRoot") is not True:
            problems.append("runAsNonRoot")
    return problems


def test_a_replaced_security_context_that_passes_the_policy_renders_restricted():
    """Each of these passes the admin policy; the rendered pod is still restricted, because an
    omitted field keeps the restricted default rather than the runtime's."""
    replacements = [
        {"containerSecurityContext": {"runAsNonRoot": True}},
        {"containerSecurityContext": {"runAsNonRoot": True, "readOnlyRootFilesystem": True}},
        {"securityContext": {"runAsNonRoot": True, "fsGroup": 2000}, "containerSecurityContext": {}},
        {"securityContext": {"runAsNonRoot": True}},
        {"containerSecurityContext": {"runAsNonRoot": True, "capabilities": {"add": ["NET_BIND_SERVICE"]}}},
        {},
    ]
    for pod_template in replacements:
        if violations(AdminPolicy(), job(pod_template)):
            continue
        assert restricted_compliant(worker_pod_spec(pod_template)) == [], pod_template


def test_an_unconfined_replaced_context_is_refused_unless_the_policy_allows_it():
    lines = violations(AdminPolicy(), job({"containerSecurityContext": UNCONFINED}))
    assert {line.split(":")[0] for line in lines} == {
        f"spec.podTemplate.containerSecurityContext.{field}"
        for field in ("seccompProfile.type", "seLinuxOptions.type", "appArmorProfile.type")}
    opened = AdminPolicy(allow_privileged=True)
    assert violations(opened, job({"containerSecurityContext": UNCONFINED})) == []
    container = worker_pod_spec({"containerSecurityContext": UNCONFINED})["containers"][0]["securityContext"]
    # Opened for its profiles only: escalation and capabilities keep their restricted defaults.
    assert container["allowPrivilegeEscalation"] is False and container["capabilities"] == {"drop": ["ALL"]}


def test_a_privileged_container_gets_no_contradictory_escalation_default():
    """The API server refuses allowPrivilegeEscalation false beside privileged or SYS_ADMIN."""
    for context in ({"privileged": True}, {"capabilities": {"add": ["SYS_ADMIN"]}}):
        rendered = worker_pod_spec({"containerSecurityContext": context})["containers"][0]["securityContext"]
        assert "allowPrivilegeEscalation" not in rendered


def test_every_rule_has_a_case_and_a_default_spec_passes():
    assert {rule.field for rule in RULES} == {case[0] for case in CASES + SPEC_CASES}
    assert violations(AdminPolicy(), TrainingJob.from_dict(spec())) == []


def test_settings_round_trip_and_misspellings_are_errors():
    policy = AdminPolicy(allowed_service_accounts=("a", "b"), allow_host_path=True)
    assert AdminPolicy.from_data(policy.to_data()) == policy
    assert AdminPolicy.from_data({}) == AdminPolicy()
    with pytest.raises(UsageError, match="allowHostpath"):
        AdminPolicy.from_data({"allowHostpath": "true"})
    with pytest.raises(UsageError, match="true or false"):
        AdminPolicy.from_data({"allowHostPath": "yes"})


def test_operator_reads_a_mounted_config_map(tmp_path):
    """A ConfigMap volume: one link per key into a `..data` directory, which is skipped."""
    data = tmp_path / "..2026_11_26"
    data.mkdir()
    (data / "allowHostPath").write_text("true")
    (data / "allowedServiceAccounts").write_text("trainer,reader")
    (tmp_path / "..data").symlink_to(data.name)
    for key in ("allowHostPath", "allowedServiceAccounts"):
        (tmp_path / key).symlink_to(f"..data/{key}")
    assert read_admin_policy(str(tmp_path)) == AdminPolicy(allow_host_path=True,
                                                           allowed_service_accounts=("trainer", "reader"))
    assert read_admin_policy(None) == AdminPolicy()


def test_chart_defaults_and_manifests_are_the_code_defaults():
    values = yaml.safe_load((REPO / "charts/tandem/values.yaml").read_text())["adminPolicy"]
    as_data = {key: ",".join(value) if isinstance(value, list) else str(value).lower() for key, value in values.items()}
    assert AdminPolicy.from_data(as_data) == AdminPolicy()
    (config_map,) = [o for o in yaml.safe_load_all((REPO / "manifests/admission.yaml").read_text())
                     if o["kind"] == "ConfigMap"]
    assert config_map["data"] == AdminPolicy().to_data()


def test_shipped_cel_is_the_generated_cel():
    for relative, text in shipped_files().items():
        assert (REPO / relative).read_text() == text, f"{relative} is stale: run hack/sync-admission.sh"


# ------------------------------------------------------------------------ the operator's side


def training_job(pod_template: dict) -> dict:
    document = spec(podTemplate=pod_template)
    document["metadata"].update(uid="u-1", generation=1)
    return document


@pytest.mark.parametrize("pod_template", [case[1] for case in CASES])
def test_operator_refuses_a_spec_the_policy_refuses_and_creates_nothing(pod_template):
    actions = reconcile(training_job(pod_template), Observed(), NOW)
    assert actions.create == [] and actions.delete_job is None
    assert actions.status["phase"] == "Invalid"
    (condition,) = [c for c in actions.status["conditions"] if c["type"] == "Invalid"]
    assert condition["reason"] == REASON_REFUSED_BY_ADMIN_POLICY
    assert condition["message"] == violations(AdminPolicy(), job(pod_template))[0]


def test_operator_with_an_opened_policy_creates_the_children():
    document = training_job({"volumes": [{"name": "h", "hostPath": {"path": "/data"}}]})
    actions = reconcile(document, Observed(), NOW, admin_policy=AdminPolicy(allow_host_path=True))
    assert [o["kind"] for o in actions.create] == ["Service", "NetworkPolicy", "Job"]


# ------------------------------------------------------------------------- tokens and status


def worker_pod_spec(pod_template: dict) -> dict:
    (job_object,) = [o for o in render(job(pod_template)) if o["kind"] == "Job"]
    return job_object["spec"]["template"]["spec"]


def test_workers_get_no_token_unless_the_spec_names_an_account():
    assert worker_pod_spec({})["automountServiceAccountToken"] is False
    assert "serviceAccountName" not in worker_pod_spec({})
    named = worker_pod_spec({"serviceAccountName": "trainer"})
    assert named["serviceAccountName"] == "trainer" and named["automountServiceAccountToken"] is True


def test_tensorboard_pod_gets_no_token():
    document = spec(tensorboard={"enabled": True, "claimName": "logs"})
    (board,) = [o for o in render(TrainingJob.from_dict(document)) if o["kind"] == "Deployment"]
    assert board["spec"]["template"]["spec"]["automountServiceAccountToken"] is False


def failed_pod(reason: str, message: str) -> dict:
    """Worker 0's pod, failed, controlled by the job's own Job (uid j-1)."""
    return {"metadata": {"name": "demo-0-x", "labels": {"batch.kubernetes.io/job-completion-index": "0"},
                         "annotations": {"tandem.dev/restart": "0"},
                         "ownerReferences": [{"kind": "Job", "name": "demo", "uid": "j-1", "controller": True}]},
            "spec": {"containers": [{"image": "example.org/train:1"}]},
            "status": {"phase": "Failed", "containerStatuses": [
                {"image": "example.org/train:1",
                 "state": {"terminated": {"exitCode": 1, "reason": reason, "message": message}}}]}}


def test_a_termination_message_never_reaches_status():
    """Tenant code may write a mounted Secret to /dev/termination-log; status names the worker,
    its exit code and the kubelet's reason, never the message."""
    document = training_job({})
    document["status"] = {"phase": "Running", "restarts": 0, "startTime": "2026-11-25T11:00:00Z"}
    job = owned("Job", "demo", "j-1", metadata={"annotations": {"tandem.dev/restart": "0"}},
                status={"conditions": [{"type": "Failed", "status": "True"}]})
    observed = observe("u-1", owned("Service", "demo", "s-1"), job, [failed_pod("Error", "DB_PASSWORD=hunter2")])
    actions = reconcile(document, observed, NOW)
    text = str(actions.status) + str([e.message for e in actions.events])
    assert "worker 0 (pod demo-0-x) failed with exit code 1 (Error)" in text
    assert "hunter2" not in text


def test_the_runtimes_own_start_failure_message_is_kept():
    """A start the runtime failed (exit 128) carries runc's words, not the container's."""
    job = owned("Job", "demo", "j-1", metadata={"annotations": {"tandem.dev/restart": "0"}})
    (state,) = observe("u-1", None, job, [failed_pod("StartError", 'exec: "trian.py": executable file not found')]).pods
    assert "executable file not found" in state.message


# ---------------------------------------------------------------- the generated admission policies
# No CEL evaluator in the unit tier: these read the generated text; tests/cluster's admission
# tests run it in an API server.


def policy_named(suffix: str) -> dict:
    (policy,) = [o for o in admission_objects("tandem", "tandem-system", "tandem-operator", AdminPolicy(), {})
                 if o["kind"] == "ValidatingAdmissionPolicy" and o["metadata"]["name"] == f"tandem-{suffix}"]
    return policy


def test_child_pod_rules_cover_init_and_ephemeral_containers():
    container_rules = [v for v in child_pod_validations() if "securityContext" in v["message"].split(":")[0]
                       and "[*]" in v["message"]]
    assert len(container_rules) == sum(rule.field.startswith("spec.podTemplate.containerSecurityContext.")
                                       for rule in RULES)
    for validation in container_rules:
        for kind in ("containers", "initContainers", "ephemeralContainers"):
            assert f"object.spec.template.spec.{kind}.all(c, " in validation["expression"], validation


def test_child_pod_annotations_rule_reads_the_templates_metadata():
    (rule,) = [v for v in child_pod_validations() if v["message"].startswith("spec.template.metadata.annotations")]
    assert "object.spec.template.metadata.annotations.all(k, " in rule["expression"]
    assert "!has(object.spec.template.metadata)" in rule["expression"]


def test_children_policy_refuses_node_name_and_covers_delete_of_foreign_objects():
    children = policy_named("operator-children")
    (rules,) = children["spec"]["matchConstraints"]["resourceRules"]
    assert rules["operations"] == ["CREATE", "UPDATE", "DELETE"]
    validations = children["spec"]["validations"]
    assert any("!has(object.spec.template.spec.nodeName)" in v["expression"] for v in validations)
    on_object = [v for v in validations if "object.metadata" in v["expression"].replace("oldObject", "")]
    # `object` is null on DELETE: each check of it must stand aside there, or it errors (and Fail denies).
    assert on_object and all(v["expression"].startswith("request.operation == 'DELETE' || (") for v in on_object)
    (previous,) = [v for v in validations if "oldObject" in v["expression"]]
    expression = previous["expression"]
    assert expression.startswith("request.operation == 'CREATE' || (")
    for needed in (f"'{JOB_NAME_LABEL}' in oldObject.metadata.labels", f"'{MANAGED_BY_LABEL}' in oldObject.metadata.labels",
                   "oldObject.metadata.ownerReferences.exists(r, ", "r.controller == true"):
        assert needed in expression
    # The pods policy reads `object` only: it stays off DELETE.
    (pod_rules,) = policy_named("operator-children-pods")["spec"]["matchConstraints"]["resourceRules"]
    assert pod_rules["operations"] == ["CREATE", "UPDATE"]
