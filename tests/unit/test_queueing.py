"""Queues and scheduling, decided without a cluster: spec.queueName / priorityClassName, the
Queued phase from Kueue's Workload, and runPolicy.schedulingTimeoutSeconds (docs/queues.md)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tandem.api import TrainingJob
from tandem.api.crd import crd
from tandem.contract import KUEUE_PRIORITY_LABEL, KUEUE_QUEUE_LABEL, PHASES
from tandem.controller.observed import JobState, Observed, PodState, job_state, pod_state
from tandem.controller.policy.queueing import queued_reason, suspended_by_kueue
from tandem.controller.workload import WorkloadState, workload_state
from tandem.errors import SpecError
from tandem.render import render_one
from tests.support.specs import spec

from .test_reconcile import NOW, POLICY, step, training_job

QUEUED = {"queueName": "gpus"}
PRIORITISED = {**QUEUED, "priorityClassName": "high"}
KUEUE_MESSAGE = ("couldn't assign flavors to pod set main: insufficient unused quota for nvidia.com/gpu in "
                 "flavor default, 2 more needed")
SCHEDULER_MESSAGE = "0/4 nodes are available: 4 Insufficient nvidia.com/gpu."


def unschedulable_pods(since=NOW, count=2, stuck=(1,)):
    return [PodState(name=f"demo-{i}-x", index=i, restart=0, phase="Pending" if i in stuck else "Running",
                     unschedulable_message=SCHEDULER_MESSAGE if i in stuck else "",
                     unschedulable_since=since.strftime("%Y-%m-%dT%H:%M:%SZ") if i in stuck else "")
            for i in range(count)]


# ------------------------------------------------------------------------------ the spec


def test_queue_and_priority_reach_the_job_which_is_created_suspended():
    job = render_one(TrainingJob.from_dict(spec(**PRIORITISED)), "Job")
    assert job["spec"]["suspend"] is True
    assert job["metadata"]["labels"][KUEUE_QUEUE_LABEL] == "gpus"
    assert job["metadata"]["labels"][KUEUE_PRIORITY_LABEL] == "high"
    # Kueue's priority is not the pods' PriorityClass.
    assert "priorityClassName" not in job["spec"]["template"]["spec"]


def test_without_a_queue_the_job_is_neither_suspended_nor_labelled():
    job = render_one(TrainingJob.from_dict(spec()), "Job")
    assert "suspend" not in job["spec"]
    assert not {KUEUE_QUEUE_LABEL, KUEUE_PRIORITY_LABEL} & set(job["metadata"]["labels"])


@pytest.mark.parametrize("changes, path", [
    ({"priorityClassName": "high"}, "spec.priorityClassName"),
    ({"queueName": "Not_A_Name"}, "spec.queueName"),
    ({"queueName": "q" * 64}, "spec.queueName"),
    ({"runPolicy": {"schedulingTimeoutSeconds": 0}}, "spec.runPolicy.schedulingTimeoutSeconds"),
    ({"runPolicy": {"schedulingTimeoutAction": "Retry"}}, "spec.runPolicy.schedulingTimeoutAction"),
])
def test_bad_queue_fields_are_refused_naming_the_field(changes, path):
    with pytest.raises(SpecError) as refused:
        TrainingJob.from_dict(spec(**changes))
    assert refused.value.problems[0][0] == path


def test_the_crd_says_the_same_and_describes_every_new_field():
    schema = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert any(r["rule"] == "!has(self.priorityClassName) || has(self.queueName)" for r in schema["x-kubernetes-validations"])
    run_policy = schema["properties"]["runPolicy"]["properties"]
    assert run_policy["schedulingTimeoutAction"]["enum"] == ["Fail", "Wait"]
    for field in (schema["properties"]["queueName"], schema["properties"]["priorityClassName"],
                  run_policy["schedulingTimeoutSeconds"], run_policy["schedulingTimeoutAction"]):
        assert field["description"]
    assert PHASES[0] == "Queued"


# ------------------------------------------------------------------------------ Kueue's words


def test_workload_state_reads_kueue_conditions():
    pending = workload_state({"metadata": {"name": "job-demo-1"}, "status": {"conditions": [
        {"type": "QuotaReserved", "status": "False", "reason": "Pending", "message": KUEUE_MESSAGE}]}})
    assert pending == WorkloadState(name="job-demo-1", reason="Pending", message=KUEUE_MESSAGE)
    evicted = workload_state({"metadata": {"name": "w"}, "status": {"conditions": [
        {"type": "Evicted", "status": "True", "reason": "Preempted", "message": "Preempted to accommodate a workload"},
        {"type": "QuotaReserved", "status": "False", "reason": "Pending", "message": KUEUE_MESSAGE}]}})
    assert evicted.evicted_reason == "Preempted" and not evicted.admitted
    admitted = workload_state({"status": {"conditions": [
        {"type": "Admitted", "status": "True"}, {"type": "QuotaReserved", "status": "True", "reason": "QuotaReserved"}]}})
    assert admitted.admitted and admitted.reason == ""


def test_queued_reason_names_the_queue_and_kueue_reason():
    assert queued_reason("gpus", WorkloadState("w", "Pending", KUEUE_MESSAGE)) == (
        "Pending", f"waiting in LocalQueue gpus for Kueue to admit all workers: {KUEUE_MESSAGE}")
    reason, message = queued_reason("gpus", WorkloadState("w", "Pending", KUEUE_MESSAGE, "Preempted", "to make room"))
    assert reason == "Preempted" and "evicted (Preempted): to make room" in message and KUEUE_MESSAGE in message
    reason, message = queued_reason("gpus", WorkloadState(missing="the operator may not read Kueue Workloads"))
    assert reason == "NoWorkload" and "may not read" in message
    assert queued_reason("gpus", None)[0] == "Pending"


def test_job_state_and_pod_state_read_suspension_and_the_scheduler():
    assert job_state({"metadata": {}, "spec": {"suspend": True}}).suspended
    assert not job_state({"metadata": {}, "spec": {}}).suspended
    pod = pod_state({"metadata": {"name": "p", "labels": {"batch.kubernetes.io/job-completion-index": "1"}},
                     "status": {"phase": "Pending", "conditions": [
                         {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                          "message": SCHEDULER_MESSAGE, "lastTransitionTime": "2026-11-25T12:00:00Z"}]}})
    assert pod.unschedulable_message == SCHEDULER_MESSAGE and pod.unschedulable_since == "2026-11-25T12:00:00Z"
    gated = pod_state({"metadata": {"name": "p"}, "status": {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}})
    assert gated.unschedulable_message == ""


# ------------------------------------------------------------------------------ the decision


def test_a_suspended_queued_job_is_queued_reads_its_workload_and_counts_no_failure():
    obj, _ = step(training_job(**QUEUED), Observed())
    held = Observed(True, JobState(0, suspended=True, uid="job-uid"), [], network_policy=POLICY,
                    workload=WorkloadState("w", "Pending", KUEUE_MESSAGE))
    obj, actions = step(obj, held)
    assert obj["status"]["phase"] == "Queued" and actions.read_workload is not None
    assert actions.read_workload.job_uid == "job-uid" and actions.requeue_after
    queued = next(c for c in obj["status"]["conditions"] if c["type"] == "Queued")
    assert queued["reason"] == "Pending" and "LocalQueue gpus" in queued["message"]
    # Preempted: Kueue suspends the Job and its pods are going; nothing is counted, nothing deleted.
    going = [PodState(name="demo-0-x", index=0, restart=0, phase="Failed", exit_code=143, deleting=True)]
    obj, actions = step(obj, Observed(True, JobState(0, suspended=True, uid="job-uid"), going, network_policy=POLICY,
                                      workload=WorkloadState("w", "Pending", KUEUE_MESSAGE, "Preempted", "room")))
    assert obj["status"]["restarts"] == 0 and actions.delete_job is None
    assert next(c for c in obj["status"]["conditions"] if c["type"] == "Queued")["reason"] == "Preempted"
    # Readmitted: the same Job runs again.
    obj, actions = step(obj, Observed(True, JobState(0, uid="job-uid"), [
        PodState(name=f"demo-{i}-y", index=i, restart=0, phase="Running") for i in range(2)], network_policy=POLICY))
    assert obj["status"]["phase"] == "Running" and obj["status"]["restarts"] == 0 and actions.read_workload is None


def test_suspended_by_kueue_only_for_a_queued_job():
    queued = TrainingJob.from_dict(spec(**QUEUED))
    plain = TrainingJob.from_dict(spec())
    held = Observed(True, JobState(0, suspended=True))
    assert suspended_by_kueue(queued, held) and not suspended_by_kueue(plain, held)
    assert not suspended_by_kueue(queued, Observed(True, JobState(0)))
    assert not suspended_by_kueue(queued, Observed(True, JobState(0, suspended=True, deleting=True)))


def test_an_unschedulable_worker_is_quoted_in_pending_even_without_a_timeout():
    obj, _ = step(training_job(), Observed())
    obj, actions = step(obj, Observed(True, JobState(0), unschedulable_pods(), network_policy=POLICY))
    pending = next(c for c in obj["status"]["conditions"] if c["type"] == "Pending")
    assert obj["status"]["phase"] == "Pending" and pending["reason"] == "Unschedulable"
    assert "1/2 workers cannot be scheduled; worker 1" in pending["message"] and SCHEDULER_MESSAGE in pending["message"]
    assert actions.delete_job is None


def test_at_the_scheduling_timeout_the_job_fails_and_its_workers_go():
    obj, _ = step(training_job(runPolicy={"schedulingTimeoutSeconds": 60}), Observed())
    observed = Observed(True, JobState(0), unschedulable_pods(), network_policy=POLICY)
    obj, actions = step(obj, observed, NOW + timedelta(seconds=30))
    pending = next(c for c in obj["status"]["conditions"] if c["type"] == "Pending")
    assert "fails at 2026-11-25T12:01:00Z" in pending["message"] and actions.requeue_after == 30
    obj, actions = step(obj, observed, NOW + timedelta(seconds=60))
    assert obj["status"]["phase"] == "Failed" and actions.delete_job is not None
    failed = next(c for c in obj["status"]["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "SchedulingTimeout" and SCHEDULER_MESSAGE in failed["message"]


def test_with_wait_the_job_stays_pending_past_the_timeout_saying_so():
    obj, _ = step(training_job(runPolicy={"schedulingTimeoutSeconds": 60, "schedulingTimeoutAction": "Wait"}), Observed())
    obj, actions = step(obj, Observed(True, JobState(0), unschedulable_pods(), network_policy=POLICY),
                        NOW + timedelta(seconds=600))
    pending = next(c for c in obj["status"]["conditions"] if c["type"] == "Pending")
    assert obj["status"]["phase"] == "Pending" and actions.delete_job is None
    assert "still waiting (schedulingTimeoutAction Wait)" in pending["message"]


def test_placed_workers_clear_the_unschedulable_report():
    obj, _ = step(training_job(runPolicy={"schedulingTimeoutSeconds": 60}), Observed())
    obj, _ = step(obj, Observed(True, JobState(0), unschedulable_pods(), network_policy=POLICY))
    running = [PodState(name=f"demo-{i}-x", index=i, restart=0, phase="Running") for i in range(2)]
    obj, _ = step(obj, Observed(True, JobState(0), running, network_policy=POLICY), NOW + timedelta(seconds=120))
    assert obj["status"]["phase"] == "Running"


def test_a_preempted_group_restarts_its_progress_clock():
    """The time a group spends held by Kueue is not silence: its progress record is dropped
    (null, so the status merge patch removes it), and the clock starts again after readmission."""
    obj, _ = step(training_job(**QUEUED, runPolicy={"progressDeadlineSeconds": 60}), Observed())
    obj["status"]["progress"] = {"restart": 0, "since": "2026-01-01T00:00:00Z", "checkedAt": "2026-01-01T00:00:10Z",
                                 "lastStep": 5, "lastStepAt": "2026-01-01T00:00:10Z",
                                 "workers": [{"index": 0, "steps": 5, "at": "2026-01-01T00:00:10Z"}]}
    held = Observed(True, JobState(0, suspended=True, uid="job-uid"), [], network_policy=POLICY,
                    workload=WorkloadState("w", "Pending", KUEUE_MESSAGE, "Preempted", "room"))
    obj, actions = step(obj, held)
    assert obj["status"]["phase"] == "Queued" and actions.status["progress"] is None
