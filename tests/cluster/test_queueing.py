"""Gang admission through Kueue, and workers the scheduler cannot place (docs/queues.md).

On the real control plane with kwok GPU nodes and a real Kueue manager (tests/support/kueue.py),
built from the Go module proxy; the operator is the real one. Nothing is mocked: Kueue admits,
preempts and requeues the Indexed Jobs the operator creates, and the real kube-scheduler says
why a worker does not fit.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Optional

import pytest

from tandem.api.admin_policy import AdminPolicy
from tests.support.kueue import (
    Kueue,
    cluster_queue,
    local_queue,
    resource_flavor,
    workload_priority_class,
)
from tests.support.kwok import job_document
from tests.support.waiting import wait_for

from .operator_fixture import Operator, apply, crd, get  # noqa: F401 - crd fixture

QUEUE = "gpus"
FLAVOR = "kwok-gpu"
#: The WorkloadPriorityClasses the tests use, which the operator's admin policy allows.
PRIORITIES = ("tandem-low", "tandem-high")


@pytest.fixture(scope="module")
def operator(control_plane, crd, tmp_path_factory):  # noqa: F811 - this module's own, with its admin policy
    """The real operator, its admin policy allowing this module's WorkloadPriorityClasses (and no other)."""
    policy = tmp_path_factory.mktemp("admin-policy")
    for key, value in AdminPolicy(allowed_priority_classes=PRIORITIES).to_data().items():
        (policy / key).write_text(value)
    op = Operator(control_plane.kubeconfig, tmp_path_factory.mktemp("operator") / "operator.log", "kube-system",
                  "--admin-policy", str(policy)).start()
    yield op
    op.stop()


@pytest.fixture(scope="module")
def kueue(control_plane, tmp_path_factory):
    manager = Kueue(control_plane, tmp_path_factory.mktemp("kueue")).start()
    manager.apply(resource_flavor(FLAVOR), workload_priority_class(PRIORITIES[0], 100),
                  workload_priority_class(PRIORITIES[1], 1000), workload_priority_class("tandem-top", 10000))
    yield manager
    manager.stop()


@pytest.fixture
def queue(kueue, ns):
    """A LocalQueue `gpus` in the test's namespace, on a ClusterQueue of its own with 4 GPUs."""
    name = f"cq-{uuid.uuid4().hex[:8]}"
    kueue.apply(cluster_queue(name, ns, FLAVOR, gpus=4), local_queue(QUEUE, ns, name))
    yield QUEUE
    kueue.control_plane.kubectl("delete", "clusterqueue", name, "--wait=false", check=False)


def gpu_job(name: str, run_seconds: float, queue: Optional[str] = QUEUE, workers: int = 3, gpus: int = 1,
            backoff: Optional[int] = None, priority: Optional[str] = None,
            exit_code: Optional[int] = None) -> dict[str, Any]:
    document = job_document(name, workers=workers, run_seconds=run_seconds, backoff=backoff, exit_code=exit_code)
    document["spec"]["resources"] = {"cpu": "1", "memory": "1Gi", "gpus": gpus}
    if queue is not None:
        document["spec"]["queueName"] = queue
    if priority is not None:
        document["spec"]["priorityClassName"] = priority
    return document


def status(control_plane, namespace: str, name: str) -> dict[str, Any]:
    return (get(control_plane, namespace, "trainingjob", name) or {}).get("status") or {}


def condition(control_plane, namespace: str, name: str, type_: str) -> dict[str, Any]:
    return next((c for c in status(control_plane, namespace, name).get("conditions") or [] if c["type"] == type_), {})


def wait_phase(control_plane, namespace: str, name: str, phase: str, timeout: float = 90) -> dict[str, Any]:
    return wait_for(f"{name} {phase}", lambda: (lambda s: s if s.get("phase") == phase else None)(
        status(control_plane, namespace, name)), timeout=timeout, interval=0.5,
        explain=lambda: json.dumps(status(control_plane, namespace, name), indent=1))


def pods_of(control_plane, namespace: str, name: str) -> list[dict[str, Any]]:
    return get(control_plane, namespace, "pods", selector=f"tandem.dev/job-name={name}")["items"]


def workloads(control_plane, namespace: str) -> list[dict[str, Any]]:
    return (get(control_plane, namespace, "workloads.kueue.x-k8s.io") or {}).get("items") or []


def test_a_group_that_does_not_fit_is_queued_with_no_pod_then_runs(control_plane, operator, queue, ns):
    """Two jobs of 3 GPUs each on a 4-GPU queue: one runs, the other waits Queued, with Kueue's
    reason and no pod at all, then runs when the first finishes."""
    apply(control_plane, ns, gpu_job("first", run_seconds=15))
    wait_phase(control_plane, ns, "first", "Running")
    apply(control_plane, ns, gpu_job("second", run_seconds=3))
    wait_phase(control_plane, ns, "second", "Queued")
    queued = wait_for("Kueue's reason in the Queued condition",
                      lambda: (lambda c: c if "insufficient" in c.get("message", "") else None)(
                          condition(control_plane, ns, "second", "Queued")), timeout=30, interval=0.5)
    assert queued["status"] == "True" and queued["reason"] == "Pending", queued
    assert f"LocalQueue {QUEUE}" in queued["message"] and "nvidia.com/gpu" in queued["message"], queued
    job = get(control_plane, ns, "job", "second")
    assert job["spec"]["suspend"] is True and job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == QUEUE
    assert pods_of(control_plane, ns, "second") == []
    assert status(control_plane, ns, "first")["phase"] == "Running"

    wait_phase(control_plane, ns, "first", "Succeeded", timeout=60)
    wait_phase(control_plane, ns, "second", "Succeeded", timeout=90)
    final = status(control_plane, ns, "second")
    assert final["restarts"] == 0
    assert condition(control_plane, ns, "second", "Queued")["status"] == "False"


def test_a_preempted_group_resumes_without_spending_its_backoff_limit(control_plane, operator, queue, ns):
    """A higher-priority job preempts a running lower one through Kueue: the lower one is Queued
    (reason Preempted), resumes when the higher one is done, and succeeds with backoffLimit 0:
    the preemption was no failure of its own."""
    apply(control_plane, ns, gpu_job("low", run_seconds=20, backoff=0, priority="tandem-low"))
    wait_phase(control_plane, ns, "low", "Running")
    first_pods = {p["metadata"]["uid"] for p in pods_of(control_plane, ns, "low")}
    apply(control_plane, ns, gpu_job("high", run_seconds=5, priority="tandem-high"))

    wait_phase(control_plane, ns, "low", "Queued", timeout=60)
    queued = wait_for("Kueue's eviction named in the Queued condition",
                      lambda: (lambda c: c if "evicted" in c.get("message", "") else None)(
                          condition(control_plane, ns, "low", "Queued")), timeout=30, interval=0.5)
    assert queued["status"] == "True" and queued["reason"] == "Preempted", queued
    wait_phase(control_plane, ns, "high", "Running", timeout=60)
    wait_phase(control_plane, ns, "high", "Succeeded", timeout=60)

    wait_phase(control_plane, ns, "low", "Running", timeout=90)
    assert {p["metadata"]["uid"] for p in pods_of(control_plane, ns, "low")}.isdisjoint(first_pods)
    final = wait_phase(control_plane, ns, "low", "Succeeded", timeout=90)
    assert final["restarts"] == 0, final


def test_a_restarted_group_queues_again_behind_the_jobs_already_waiting(control_plane, operator, queue, ns):
    """A whole-group restart gives the admission back (the group's Job, and so its Workload, is
    deleted) and the next group queues as a new arrival: a job that was already waiting runs first."""
    apply(control_plane, ns, gpu_job("flaky", run_seconds=4, backoff=1, exit_code=1))
    wait_phase(control_plane, ns, "flaky", "Running")
    apply(control_plane, ns, gpu_job("waiting", run_seconds=10))
    wait_phase(control_plane, ns, "waiting", "Queued")

    wait_phase(control_plane, ns, "waiting", "Running", timeout=60)
    requeued = status(control_plane, ns, "flaky")
    assert requeued["restarts"] == 1 and requeued["phase"] in ("Restarting", "Queued"), requeued
    wait_phase(control_plane, ns, "flaky", "Queued", timeout=30)
    assert pods_of(control_plane, ns, "flaky") == []
    wait_phase(control_plane, ns, "waiting", "Succeeded", timeout=60)
    failed = wait_phase(control_plane, ns, "flaky", "Failed", timeout=90)  # its second group ran, and failed too
    assert failed["restarts"] == 1
    assert next(c for c in failed["conditions"] if c["type"] == "Failed")["reason"] == "BackoffLimitExceeded"


def test_an_elastic_job_is_admitted_at_its_desired_size_and_keeps_it_when_scaled(control_plane, operator, queue, ns):
    """Kueue as built here (v0.13.2, workload slices off): an elastic job of 1..3 workers wanting 2
    is one Workload of 2 pods, all or none. A `kubectl scale` to 3 sets spec.workers and
    status.desiredWorkers, but the admitted Job keeps its 2 pods to the end: Kueue would take a
    resized Job for a new one, so the new size waits for the job's next group (docs/queues.md)."""
    document = gpu_job("elastic", run_seconds=15, workers=2)
    document["spec"].update(minWorkers=1, maxWorkers=3)
    document["spec"].setdefault("runPolicy", {})["inPlaceRestarts"] = 1
    apply(control_plane, ns, document)
    wait_phase(control_plane, ns, "elastic", "Running")
    (workload,) = workloads(control_plane, ns)
    assert [p["count"] for p in workload["spec"]["podSets"]] == [2], workload["spec"]["podSets"]

    control_plane.kubectl("scale", "tj", "elastic", "-n", ns, "--replicas=3")
    wait_for("desiredWorkers 3", lambda: status(control_plane, ns, "elastic").get("desiredWorkers") == 3,
             timeout=30, interval=0.5)
    sizes: set[int] = set()

    def succeeded() -> bool:
        job = get(control_plane, ns, "job", "elastic")
        if job is not None:
            sizes.add(job["spec"]["parallelism"])
        return status(control_plane, ns, "elastic").get("phase") == "Succeeded"

    wait_for("elastic Succeeded", succeeded, timeout=60, interval=0.5)
    assert sizes == {2}, sizes
    final = status(control_plane, ns, "elastic")
    assert final["restarts"] == 0 and final["desiredWorkers"] == 3, final
    assert len({p["metadata"]["name"] for p in pods_of(control_plane, ns, "elastic")}) <= 2


def test_a_workload_priority_the_admin_policy_does_not_allow_is_refused(control_plane, operator, queue, ns):
    """spec.priorityClassName picks whom Kueue preempts: only the admin policy's classes may be used.
    The operator marks the job Invalid and creates nothing (no Job, so no Workload)."""
    apply(control_plane, ns, gpu_job("pushy", run_seconds=3, priority="tandem-top"))
    invalid = wait_phase(control_plane, ns, "pushy", "Invalid", timeout=30)
    refused = next(c for c in invalid["conditions"] if c["type"] == "Invalid")
    assert refused["reason"] == "RefusedByAdminPolicy" and refused["message"].startswith("spec.priorityClassName: "), refused
    assert get(control_plane, ns, "job", "pushy") is None and not workloads(control_plane, ns)


def test_suspend_and_resume_under_kueue(control_plane, operator, queue, ns):
    """runPolicy.suspend removes the Job (and so its Workload: the quota is given back); resuming
    queues a new Job, which Kueue admits, and the job runs to the end."""
    apply(control_plane, ns, gpu_job("pausable", run_seconds=8))
    wait_phase(control_plane, ns, "pausable", "Running")
    control_plane.kubectl("patch", "trainingjob", "pausable", "-n", ns, "--type=merge",
                          "-p", json.dumps({"spec": {"runPolicy": {"suspend": True}}}))
    wait_phase(control_plane, ns, "pausable", "Suspended")
    wait_for("the Job and its Workload gone", lambda: get(control_plane, ns, "job", "pausable") is None
             and not workloads(control_plane, ns), timeout=60, interval=0.5)
    control_plane.kubectl("patch", "trainingjob", "pausable", "-n", ns, "--type=merge",
                          "-p", json.dumps({"spec": {"runPolicy": {"suspend": False}}}))
    wait_phase(control_plane, ns, "pausable", "Succeeded", timeout=90)
    assert status(control_plane, ns, "pausable")["restarts"] == 0


def unschedulable_job(name: str, action: str, workers: int, gpus: int) -> dict[str, Any]:
    document = gpu_job(name, run_seconds=60, queue=None, workers=workers, gpus=gpus)
    document["spec"]["runPolicy"].update({"schedulingTimeoutSeconds": 6, "schedulingTimeoutAction": action})
    return document


def test_without_kueue_a_partly_placed_group_fails_at_the_scheduling_timeout(control_plane, operator, ns):
    """5 workers of 8 GPUs on 4 nodes of 8: four are placed, one never is. The job says so, with
    the scheduler's own words, then fails at schedulingTimeoutSeconds and removes the placed four."""
    apply(control_plane, ns, unschedulable_job("too-big", "Fail", workers=5, gpus=8))
    pending = wait_for("the scheduler's message in Pending", lambda: (lambda c: c if c.get("reason") == "Unschedulable"
                       else None)(condition(control_plane, ns, "too-big", "Pending")), timeout=60, interval=0.5)
    assert "1/5 workers cannot be scheduled" in pending["message"], pending
    assert "Insufficient nvidia.com/gpu" in pending["message"], pending
    failed = wait_phase(control_plane, ns, "too-big", "Failed", timeout=60)
    reason = next(c for c in failed["conditions"] if c["type"] == "Failed")
    assert reason["reason"] == "SchedulingTimeout" and "Insufficient nvidia.com/gpu" in reason["message"], reason
    wait_for("the placed workers removed", lambda: get(control_plane, ns, "job", "too-big") is None
             and not pods_of(control_plane, ns, "too-big"), timeout=60, interval=0.5)


def test_without_kueue_a_job_may_keep_waiting_after_the_scheduling_timeout(control_plane, operator, ns):
    """schedulingTimeoutAction Wait: past the timeout the job stays Pending, and says so."""
    apply(control_plane, ns, unschedulable_job("patient", "Wait", workers=2, gpus=9))
    waiting = wait_for("the timeout passed, still waiting", lambda: (lambda c: c if "still waiting" in c.get("message", "")
                       else None)(condition(control_plane, ns, "patient", "Pending")), timeout=60, interval=0.5)
    assert waiting["reason"] == "Unschedulable" and "2/2 workers cannot be scheduled" in waiting["message"], waiting
    assert status(control_plane, ns, "patient")["phase"] == "Pending"
    assert get(control_plane, ns, "job", "patient") is not None
    control_plane.kubectl("delete", "trainingjob", "patient", "-n", ns, "--wait=false")


def test_the_fields_appear_in_kubectl_explain(control_plane, crd):  # noqa: F811
    def explained(path: str) -> str:
        result = control_plane.kubectl("explain", path, check=False)
        return result.stdout if result.returncode == 0 else ""

    spec = wait_for("kubectl explain of spec.queueName", lambda: explained("trainingjobs.spec.queueName"), timeout=30)
    assert "LocalQueue" in spec
    assert "WorkloadPriorityClass" in explained("trainingjobs.spec.priorityClassName")
    run_policy = explained("trainingjobs.spec.runPolicy")
    assert "schedulingTimeoutSeconds" in run_policy and "schedulingTimeoutAction" in run_policy
    assert "Queued" in explained("trainingjobs.status.phase")
