"""The operator on the real control plane: kwok nodes run the pods, nothing is mocked."""

from __future__ import annotations

import contextlib
import json
import re
import time

import pytest

from tandem.api.columns import PRINTER_COLUMNS
from tandem.contract import CRD_NAME, tensorboard_name
from tests.conftest import EXAMPLES
from tests.support.columns import headers, table_rows
from tests.support.controlplane import CRD as SHIPPED_CRD
from tests.support.kwok import KWOK_EXIT, with_pods
from tests.support.specs import example
from tests.support.waiting import wait_for

from .operator_fixture import Operator, apply, crd, get  # noqa: F401 - crd fixture


def phase(control_plane, namespace, name):
    obj = get(control_plane, namespace, "trainingjob", name)
    return ((obj or {}).get("status") or {}).get("phase")


def condition(obj, type_):
    return next((c for c in obj["status"].get("conditions", []) if c["type"] == type_), None)


def events(control_plane, namespace, name):
    items = get(control_plane, namespace, "events")["items"]
    items = [e for e in items if e["involvedObject"]["name"] == name and e["involvedObject"]["kind"] == "TrainingJob"]
    return [e["reason"] for e in sorted(items, key=lambda e: (e.get("firstTimestamp") or "", e["metadata"]["name"]))]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_go_from_apply_to_succeeded(control_plane, operator, ns, path):
    document = with_pods(example(path.name))
    name = document["metadata"]["name"]
    apply(control_plane, ns, document)
    wait_for(f"{name} Succeeded", lambda: phase(control_plane, ns, name) == "Succeeded", timeout=90)
    expected = ["Created", "AllWorkersRunning", "Completed"]
    wait_for("events", lambda: events(control_plane, ns, name) == expected, timeout=10)  # posted after the status
    table = control_plane.kubectl("get", "tj", "-n", ns).stdout
    assert headers(table) == ["NAME", *(c.name.upper() for c in PRINTER_COLUMNS if not c.priority)]
    (row,) = table_rows(table)
    assert (row["NAME"], row["FRAMEWORK"], row["PHASE"]) == (name, document["spec"]["framework"], "Succeeded")
    (job,) = get(control_plane, ns, "jobs", selector=f"tandem.dev/job-name={name}")["items"]
    assert job["metadata"]["ownerReferences"][0]["kind"] == "TrainingJob"
    obj = get(control_plane, ns, "trainingjob", name)
    assert obj["status"]["workers"]["succeeded"] == job["spec"]["completions"]


def test_tpu_pods_land_on_tpu_nodes(control_plane, operator, ns):
    document = with_pods(example("tpu-v5e.yaml"), run_seconds=30)
    apply(control_plane, ns, document)
    name = document["metadata"]["name"]
    wait_for("Running", lambda: phase(control_plane, ns, name) == "Running", timeout=60)
    pods = get(control_plane, ns, "pods", selector=f"tandem.dev/job-name={name}")["items"]
    assert sorted(p["spec"]["nodeName"] for p in pods) == ["kwok-tpu-v5e-0", "kwok-tpu-v5e-1"]


def test_failing_pod_restarts_the_group_then_succeeds(control_plane, operator, ns):
    document = with_pods(example("mnist-ddp.yaml"), run_seconds=15, backoff=2)
    name = document["metadata"]["name"]
    apply(control_plane, ns, document)
    wait_for("Running", lambda: phase(control_plane, ns, name) == "Running", timeout=60)
    pods = get(control_plane, ns, "pods", selector=f"tandem.dev/job-name={name}")["items"]
    victim = next(p for p in pods if p["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"] == "1")
    control_plane.kubectl("annotate", "pod", "-n", ns, victim["metadata"]["name"], f"{KWOK_EXIT}=3")
    wait_for("restart", lambda: (get(control_plane, ns, "trainingjob", name)["status"].get("restarts") == 1), timeout=60)
    wait_for("Succeeded", lambda: phase(control_plane, ns, name) == "Succeeded", timeout=90)
    obj = get(control_plane, ns, "trainingjob", name)
    assert obj["status"]["restarts"] == 1
    reasons = events(control_plane, ns, name)
    assert "WorkerFailed" in reasons and reasons[-1] == "Completed"
    restarting = condition(obj, "Restarting")
    assert "worker 1" in restarting["message"] and "exit code 3" in restarting["message"]


def test_backoff_limit_reached_fails_naming_the_worker(control_plane, operator, ns):
    document = with_pods(example("mnist-ddp.yaml"), run_seconds=1, exit_code=3, backoff=1)
    name = document["metadata"]["name"]
    apply(control_plane, ns, document)
    wait_for("Failed", lambda: phase(control_plane, ns, name) == "Failed", timeout=90)
    obj = get(control_plane, ns, "trainingjob", name)
    assert obj["status"]["restarts"] == 1
    failed = condition(obj, "Failed")
    assert failed["reason"] == "BackoffLimitExceeded"
    # every worker is made to fail: the message names whichever failure was seen, with its code
    assert re.search(r"^worker [01] \(pod mnist-ddp-[01]-\w+\) failed with exit code 3", failed["message"]), failed


def test_suspend_and_resume(control_plane, operator, ns):
    document = with_pods(example("mnist-ddp.yaml"), run_seconds=8)
    name = document["metadata"]["name"]
    apply(control_plane, ns, document)
    wait_for("Running", lambda: phase(control_plane, ns, name) == "Running", timeout=60)
    control_plane.kubectl("patch", "tj", name, "-n", ns, "--type=merge", "-p", '{"spec":{"runPolicy":{"suspend":true}}}')
    wait_for("Suspended", lambda: phase(control_plane, ns, name) == "Suspended", timeout=30)
    selector = f"tandem.dev/job-name={name}"
    wait_for("workers removed", lambda: not get(control_plane, ns, "pods", selector=selector)["items"], timeout=30)
    control_plane.kubectl("patch", "tj", name, "-n", ns, "--type=merge", "-p", '{"spec":{"runPolicy":{"suspend":false}}}')
    wait_for("Succeeded after resume", lambda: phase(control_plane, ns, name) == "Succeeded", timeout=90)


def test_delete_removes_children_through_the_garbage_collector(control_plane, operator, ns):
    document = with_pods(example("mnist-ddp.yaml"), run_seconds=60)
    name = document["metadata"]["name"]
    apply(control_plane, ns, document)
    wait_for("Running", lambda: phase(control_plane, ns, name) == "Running", timeout=60)
    control_plane.kubectl("delete", "tj", name, "-n", ns, "--wait=false")
    selector = f"tandem.dev/job-name={name}"
    for kind in ("jobs", "services", "pods"):
        wait_for(f"{kind} gone", lambda kind=kind: not get(control_plane, ns, kind, selector=selector)["items"], timeout=60)


def test_ttl_after_finished_deletes_the_job(control_plane, operator, ns):
    document = with_pods(example("mnist-ddp.yaml"), run_seconds=1)
    document["spec"]["runPolicy"] = {"ttlSecondsAfterFinished": 2}
    name = document["metadata"]["name"]
    apply(control_plane, ns, document)
    wait_for("Succeeded", lambda: phase(control_plane, ns, name) == "Succeeded", timeout=60)
    wait_for("TrainingJob deleted", lambda: get(control_plane, ns, "trainingjob", name) is None, timeout=30)


@contextlib.contextmanager
def crd_without_tpu_rules(control_plane):
    """The CRD as it was before it learnt the TPU slice rules; the shipped one again on exit.

    The CRD and the model now accept the same specs (test_crd_agrees_with_model), so the only
    way an invalid spec reaches the operator is an object stored under an older, looser CRD."""
    rules = "/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/tpu/x-kubernetes-validations"
    control_plane.kubectl("patch", "crd", CRD_NAME, "--type=json", "-p", json.dumps([{"op": "remove", "path": rules}]))
    try:
        yield
    finally:  # the patch made kubectl-patch a manager of .spec.versions: take it back
        control_plane.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(SHIPPED_CRD))
        rules_back = control_plane.kubectl("get", "crd", CRD_NAME, "-o", "jsonpath={.spec.versions[0].schema.openAPIV3Schema"
                                           ".properties.spec.properties.tpu.x-kubernetes-validations[0].rule}").stdout
        assert "self.topology in" in rules_back, "the shipped CRD was not restored"


def test_invalid_object_is_marked_and_others_keep_running(control_plane, operator, ns):
    bad = example("tpu-v5e.yaml")
    bad["metadata"]["name"] = "bad-topology"
    bad["spec"]["tpu"]["topology"] = "2x2x2"  # passes the schema's pattern; no v5e slice has it
    refused = control_plane.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(bad), check=False)
    assert refused.returncode != 0 and "topology is not offered for this accelerator" in refused.stderr
    with crd_without_tpu_rules(control_plane):
        # The apiserver serves the patched schema a moment after the patch.
        wait_for("the looser CRD in force", lambda: control_plane.kubectl(
            "apply", "-n", ns, "-f", "-", input=json.dumps(bad), check=False).returncode == 0, timeout=30)
    good = with_pods(example("mnist-ddp.yaml"), run_seconds=1)
    apply(control_plane, ns, good)
    wait_for("Invalid", lambda: phase(control_plane, ns, "bad-topology") == "Invalid", timeout=30)
    invalid = condition(get(control_plane, ns, "trainingjob", "bad-topology"), "Invalid")
    assert invalid["message"].startswith("spec.tpu: topology '2x2x2' is not offered for v5e")
    wait_for("the valid job Succeeded", lambda: phase(control_plane, ns, good["metadata"]["name"]) == "Succeeded", timeout=60)
    assert get(control_plane, ns, "jobs", selector="tandem.dev/job-name=bad-topology")["items"] == []


def test_schema_rejects_cross_field_errors_at_apply(control_plane, operator, ns):
    document = example("mnist-ddp.yaml", strategy="tpu")
    result = control_plane.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(document), check=False)
    assert result.returncode != 0
    assert "strategy must be ddp for pytorch" in result.stderr


def test_operator_killed_mid_reconcile_leaves_no_duplicates(control_plane, operator, ns):
    names = [f"burst-{i}" for i in range(8)]
    for job_name in names:
        document = with_pods(example("mnist-ddp.yaml"), run_seconds=4)
        document["metadata"]["name"] = job_name
        apply(control_plane, ns, document)
    time.sleep(0.7)
    operator.kill()
    time.sleep(1)
    operator.start()
    for job_name in names:
        wait_for(f"{job_name} Succeeded", lambda n=job_name: phase(control_plane, ns, n) == "Succeeded", timeout=120)
    for job_name in names:
        selector = f"tandem.dev/job-name={job_name}"
        assert len(get(control_plane, ns, "jobs", selector=selector)["items"]) == 1
        assert len(get(control_plane, ns, "services", selector=selector)["items"]) == 1
        pods = get(control_plane, ns, "pods", selector=selector)["items"]
        indexes = [p["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"] for p in pods]
        assert sorted(indexes) == ["0", "1"], indexes
        assert get(control_plane, ns, "trainingjob", job_name)["status"]["restarts"] == 0


def test_tensorboard_deployment_points_at_the_job_volume(control_plane, operator, ns):
    document = with_pods(example("mnist-ddp.yaml"), run_seconds=20)
    document["spec"]["tensorboard"] = {"enabled": True, "claimName": "training-logs"}
    name = document["metadata"]["name"]
    apply(control_plane, ns, document)
    deployment = wait_for("TensorBoard Deployment", lambda: get(control_plane, ns, "deployment", tensorboard_name(name)), 30)
    pod = deployment["spec"]["template"]["spec"]
    assert pod["volumes"] == [{"name": "tensorboard", "persistentVolumeClaim": {"claimName": "training-logs", "readOnly": True}}]
    assert pod["containers"][0]["args"][:2] == ["--logdir", f"/tandem/tensorboard/{name}"]
    assert deployment["metadata"]["ownerReferences"][0]["name"] == name
    # The operator applies the TensorBoard's Service one API call after its Deployment.
    service = wait_for("TensorBoard Service", lambda: get(control_plane, ns, "service", tensorboard_name(name)), 30)
    assert service["spec"]["ports"][0]["port"] == 6006
    status = wait_for("status.tensorboard", lambda: get(control_plane, ns, "trainingjob", name)["status"].get("tensorboard"), 30)
    assert status == f"http://{tensorboard_name(name)}.{ns}.svc:6006"
    (job,) = get(control_plane, ns, "jobs", selector=f"tandem.dev/job-name={name}")["items"]
    worker = job["spec"]["template"]["spec"]
    assert {"name": "tensorboard", "persistentVolumeClaim": {"claimName": "training-logs"}} in worker["volumes"]
