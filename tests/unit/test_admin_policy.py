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
from tandem.api.admission import shipped_files
from tandem.api.model import TrainingJob
from tandem.contract import REASON_REFUSED_BY_ADMIN_POLICY
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
