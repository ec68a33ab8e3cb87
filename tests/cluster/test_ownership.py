"""Ownership of children, refused children and invalid edits, on
the real control plane with the operator really running: kwok nodes run the pods, the API
server's own admission (ResourceQuota) refuses what it refuses, nothing is mocked."""

from __future__ import annotations

import time

import pytest

from tests.support.kwok import with_pods
from tests.support.specs import example
from tests.support.waiting import wait_for

from .operator_fixture import Operator, apply, crd, get  # noqa: F401 - crd fixture


def condition(control_plane, namespace, name, type_):
    obj = get(control_plane, namespace, "trainingjob", name) or {}
    return next((c for c in (obj.get("status") or {}).get("conditions", []) if c["type"] == type_), None)


def phase(control_plane, namespace, name):
    return ((get(control_plane, namespace, "trainingjob", name) or {}).get("status") or {}).get("phase")


def true_condition(control_plane, namespace, name, type_):
    found = condition(control_plane, namespace, name, type_)
    return found if found and found["status"] == "True" else None


def test_a_foreign_service_with_the_jobs_name_is_not_taken_over(control_plane, operator, ns):
    name = "squatted"
    foreign = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "labels": {"app": "theirs"}},
               "spec": {"selector": {"app": "theirs"}, "ports": [{"port": 80, "targetPort": 8080}]}}
    apply(control_plane, ns, foreign)
    document = with_pods(example("mnist-ddp.yaml"), run_seconds=5)
    document["metadata"]["name"] = name
    apply(control_plane, ns, document)
    held = wait_for("NameConflict", lambda: true_condition(control_plane, ns, name, "NameConflict"), timeout=30)
    assert f"Service {name}" in held["message"] and "no owner" in held["message"], held
    assert phase(control_plane, ns, name) == "Pending"
    time.sleep(3)  # a few more passes: still not taken over
    service = get(control_plane, ns, "service", name)
    assert not service["metadata"].get("ownerReferences"), service["metadata"]
    assert service["metadata"]["labels"] == {"app": "theirs"} and service["spec"]["selector"] == {"app": "theirs"}
    assert "tandem-operator" not in {m.get("manager") for m in service["metadata"].get("managedFields", [])}
    assert get(control_plane, ns, "jobs", name) is None, "nothing is created while the name is held"


def test_a_recreated_training_job_does_not_adopt_the_old_job(control_plane, operator, ns):
    document = with_pods(example("mnist-ddp.yaml"), run_seconds=1)
    name = document["metadata"]["name"]
    apply(control_plane, ns, document)
    wait_for("first Succeeded", lambda: phase(control_plane, ns, name) == "Succeeded", timeout=90)
    old_uid = get(control_plane, ns, "trainingjob", name)["metadata"]["uid"]
    # Orphaned, the old Job (Complete) stays with the TrainingJob's name and label and no owner.
    control_plane.kubectl("delete", "trainingjob", name, "-n", ns, "--cascade=orphan", "--wait=true")
    wait_for("the old Job orphaned",
             lambda: not (get(control_plane, ns, "jobs", name) or {}).get("metadata", {}).get("ownerReferences"), 30)
    apply(control_plane, ns, document)
    held = wait_for("NameConflict", lambda: true_condition(control_plane, ns, name, "NameConflict"), timeout=30)
    assert f"Job {name}" in held["message"], held
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:  # the old Job's Complete never becomes the new object's Succeeded
        assert phase(control_plane, ns, name) == "Pending"
        time.sleep(0.5)
    obj = get(control_plane, ns, "trainingjob", name)
    assert obj["metadata"]["uid"] != old_uid and not obj["status"].get("completionTime")
    # The old Job and Service removed: the new TrainingJob runs its own group, to the end.
    control_plane.kubectl("delete", "job,service,networkpolicy", name, "-n", ns, "--cascade=background")
    wait_for("Succeeded by its own Job", lambda: phase(control_plane, ns, name) == "Succeeded", timeout=90)
    (job,) = get(control_plane, ns, "jobs", selector=f"tandem.dev/job-name={name}")["items"]
    assert job["metadata"]["ownerReferences"][0]["uid"] == obj["metadata"]["uid"]


def quota(control_plane, namespace, hard):
    """A ResourceQuota, once the quota controller has counted (admission refuses until then)."""
    apply(control_plane, namespace, {"apiVersion": "v1", "kind": "ResourceQuota",
                                     "metadata": {"name": "no-room"}, "spec": {"hard": hard}})
    wait_for("quota counted", lambda: (get(control_plane, namespace, "resourcequota", "no-room").get("status") or {})
             .get("hard"), timeout=30)


@pytest.mark.parametrize("hard, words", [
    ({"count/jobs.batch": "0"}, "creating Job"),  # refused to the operator itself
    ({"pods": "0"}, "the Job controller could not create the pods"),  # refused to the Job controller
], ids=["job-refused", "pods-refused"])
def test_a_child_refused_by_the_api_server_is_shown_with_its_message(control_plane, operator, ns, hard, words):
    quota(control_plane, ns, hard)
    document = with_pods(example("mnist-ddp.yaml"), run_seconds=1)
    name = document["metadata"]["name"]
    apply(control_plane, ns, document)
    rejected = wait_for("ChildRejected", lambda: true_condition(control_plane, ns, name, "ChildRejected"), timeout=45)
    assert words in rejected["message"] and "exceeded quota: no-room" in rejected["message"], rejected
    assert len(rejected["message"]) <= 1024
    assert phase(control_plane, ns, name) == "Pending"
    # The quota lifted: a later retry (backoff) goes through and the job runs to the end.
    control_plane.kubectl("delete", "resourcequota", "no-room", "-n", ns)
    wait_for("Succeeded once allowed", lambda: phase(control_plane, ns, name) == "Succeeded", timeout=120)
    assert condition(control_plane, ns, name, "ChildRejected")["status"] == "False"


def test_an_invalid_edit_does_not_stop_the_deadline(control_plane, operator, ns):
    document = with_pods(example("tpu-v5e.yaml"), run_seconds=300)
    document["spec"]["runPolicy"] = {"activeDeadlineSeconds": 25}
    name = document["metadata"]["name"]
    apply(control_plane, ns, document)
    wait_for("Running", lambda: phase(control_plane, ns, name) == "Running", timeout=60)
    # The CRD and the model now agree on every field (test_crd_agrees_with_model), so the edit
    # that makes the running job Invalid is one the operator's admin policy refuses (a hostPath
    # volume): what a cluster without the admission policies, or a policy tightened after the job
    # was applied, lets through to the operator.
    edit = control_plane.kubectl("patch", "tj", name, "-n", ns, "--type=merge", "-p",
                                 '{"spec":{"podTemplate":{"volumes":[{"name":"h","hostPath":{"path":"/data"}}]}}}')
    assert edit.returncode == 0, edit.stderr
    wait_for("Invalid", lambda: phase(control_plane, ns, name) in ("Invalid", "Failed"), timeout=20)
    started = get(control_plane, ns, "trainingjob", name)["status"]["startTime"]
    wait_for("Failed at the deadline", lambda: phase(control_plane, ns, name) == "Failed", timeout=45)
    failed = condition(control_plane, ns, name, "Failed")
    assert failed["reason"] == "DeadlineExceeded", failed
    wait_for("Invalid beside Failed", lambda: true_condition(control_plane, ns, name, "Invalid"), timeout=15)
    wait_for("workers removed", lambda: not get(control_plane, ns, "pods", selector=f"tandem.dev/job-name={name}")["items"],
             timeout=60)
    # Failed stays Failed while the spec stays invalid.
    time.sleep(2)
    assert phase(control_plane, ns, name) == "Failed" and started
