"""A lost worker pod of an in-place job rejoins; worker 0 lost, or a job's own rule, restarts the
group; every group restart and rejoin is a status.recoveries entry with its seconds."""

from __future__ import annotations

from datetime import timedelta

import kubernetes_validate

from tandem.api import TrainingJob
from tandem.api.failure_rules import Failure, judge
from tandem.api.model import FailurePolicy
from tandem.api.rejoin import (
    FAIL,
    GROUP_RESTART,
    REJOIN,
    lost_pod_outcome,
    pod_failure_policy,
    settle_seconds,
)
from tandem.api.status import RecoveryStatus
from tandem.controller.observed import JobState, Observed, PodState
from tandem.render import render_one
from tests.conftest import K8S_VERSION
from tests.support.specs import spec

from .test_reconcile import NOW, step, training_job

DISRUPTED = frozenset({("DisruptionTarget", "True")})


def job(**run_policy):
    return TrainingJob.from_dict(spec(runPolicy=run_policy))


# the Job's failure policy

def test_a_rejoining_job_lets_the_job_controller_replace_a_lost_pod():
    rendered = render_one(job(inPlaceRestarts=2), "Job")["spec"]
    assert rendered["backoffLimit"] == 0 and rendered["podReplacementPolicy"] == "Failed"
    assert rendered["podFailurePolicy"]["rules"] == [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
        {"action": "Ignore", "onExitCodes": {"containerName": "worker", "operator": "In", "values": [143]}},
    ]
    kubernetes_validate.validate(render_one(job(inPlaceRestarts=2), "Job"), K8S_VERSION, strict=True)


def test_without_in_place_restarts_or_torch_any_lost_pod_fails_the_job():
    assert "podFailurePolicy" not in render_one(job(), "Job")["spec"]
    keras = TrainingJob.from_dict(spec(framework="tensorflow", strategy="multi-worker-mirrored",
                                       runPolicy={"inPlaceRestarts": 2}))
    assert pod_failure_policy(keras.spec) is None


def test_a_jobs_own_rule_on_disruptions_keeps_the_job_controller_out():
    """The job counts (or fails on) disruptions: the Job fails and the operator judges it, as before."""
    counted = job(inPlaceRestarts=2, failurePolicy={"rules": [
        {"action": "Count", "onPodConditions": [{"type": "DisruptionTarget"}]}]})
    fatal = job(inPlaceRestarts=2, failurePolicy={"rules": [
        {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [143]}}]})
    unrelated = job(inPlaceRestarts=2, failurePolicy={"rules": [
        {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [2]}}]})
    assert pod_failure_policy(counted.spec) is None and pod_failure_policy(fatal.spec) is None
    assert pod_failure_policy(unrelated.spec) is not None


# the pure decision

def outcome(failure, rules=(), remaining=1, min_workers=2):
    return lost_pod_outcome(failure, judge(failure, FailurePolicy.model_validate({"rules": list(rules)})),
                            remaining, min_workers)


def test_a_lost_pod_other_than_the_store_host_rejoins():
    assert outcome(Failure(1, exit_code=143, reason="Error", deleting=True)) == REJOIN
    assert outcome(Failure(1, exit_code=137, conditions=DISRUPTED, deleting=True)) == REJOIN


def test_the_store_hosts_pod_lost_is_a_group_restart():
    assert outcome(Failure(0, exit_code=143, reason="Error", deleting=True)) == GROUP_RESTART


def test_rules_decide_first():
    deleted = Failure(1, exit_code=143, reason="Error", deleting=True)
    assert outcome(deleted, [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [143]}}]) == FAIL
    assert outcome(deleted, [{"action": "Count", "onExitCodes": {"operator": "In", "values": [143]}}]) == GROUP_RESTART
    # an OOM kill while deleting is the job's own failure, not a lost pod
    assert outcome(Failure(1, exit_code=137, reason="OOMKilled", deleting=True)) == GROUP_RESTART


def test_more_missing_than_the_lost_pod_is_a_group_restart():
    assert outcome(Failure(2, exit_code=143, reason="Error", deleting=True), remaining=1, min_workers=3) == GROUP_RESTART
    assert outcome(Failure(2, exit_code=143, reason="Error", deleting=True), remaining=2, min_workers=3) == REJOIN


def test_an_elastic_job_needs_only_its_minimum():
    """minWorkers 2 of 4: with two pods lost at once, the two left and the rejoining one are enough."""
    lost = Failure(3, exit_code=143, reason="Error", deleting=True)
    assert outcome(lost, remaining=2, min_workers=2) == REJOIN
    assert outcome(lost, remaining=0, min_workers=2) == GROUP_RESTART


# seconds

def record(recovered, worker=1, restart=0, time="2026-11-25T12:00:00Z"):
    return RecoveryStatus(worker=worker, recovered=recovered, restart=restart, time=time)


def test_a_rejoin_took_until_the_new_pod_started():
    records = [record("Rejoined")]
    assert not settle_seconds(records, {(0, 1): "2026-11-25T11:59:00Z"}, 2)  # still the lost pod's start
    assert records[0].seconds is None
    assert settle_seconds(records, {(0, 0): "2026-11-25T11:59:00Z", (0, 1): "2026-11-25T12:00:04Z"}, 2)
    assert records[0].seconds == 4.0


def test_a_group_restart_took_until_every_new_worker_started():
    records = [record("GroupRestart", restart=0), record("InPlace")]
    assert not settle_seconds(records, {(1, 0): "2026-11-25T12:00:05Z"}, 2)
    assert settle_seconds(records, {(1, 0): "2026-11-25T12:00:05Z", (1, 1): "2026-11-25T12:00:07Z"}, 2)
    assert records[0].seconds == 7.0 and records[1].seconds is None


# the operator

def in_place(status=None, rules=()):
    return training_job(status=status, runPolicy={"inPlaceRestarts": 2, "failurePolicy": {"rules": list(rules)}})


def running(restart=0, started="2026-11-25T11:50:00Z"):
    return [PodState(f"demo-{i}-r{restart}", i, restart, "Running", ready=True, started=started) for i in range(2)]


def deleted(index, restart=0):
    return PodState(f"demo-{index}-old", index, restart, "Failed", exit_code=143, reason="Error", deleting=True,
                    finished="2026-11-25T12:00:00Z")


def test_a_deleted_worker_rejoins_without_a_group_restart():
    obj, _ = step(in_place(), Observed())
    survivor = running()[0]
    obj, actions = step(obj, Observed(True, JobState(0), [survivor, deleted(1)]))
    status = obj["status"]
    assert status["restarts"] == 0 and not actions.delete_job and status.get("phase") != "Restarting"
    assert status["recoveries"] == [{"worker": 1, "exitCode": 143, "reason": "PodDeleted", "recovered": "Rejoined",
                                     "restart": 0, "time": "2026-11-25T12:00:00Z", "pod": "demo-1-old"}]
    assert [(e.reason, e.message) for e in actions.events if e.reason == "Rejoined"] == [
        ("Rejoined", "recovered by a new pod that rejoined: worker 1 exit 143 (PodDeleted), group #0")]
    # seen again (the cache keeps a gone failed pod): recorded once; the new pod's start gives the seconds
    new = PodState("demo-1-new", 1, 0, "Running", started="2026-11-25T12:00:03Z")
    obj, actions = step(obj, Observed(True, JobState(0), [survivor, deleted(1), new]), NOW + timedelta(seconds=5))
    assert len(obj["status"]["recoveries"]) == 1 and obj["status"]["recoveries"][0]["seconds"] == 3.0
    assert not any(e.reason == "Rejoined" for e in actions.events)


def test_a_later_failure_is_not_blamed_on_the_pod_that_rejoined():
    obj, _ = step(in_place(), Observed())
    obj, _ = step(obj, Observed(True, JobState(0), [running()[0], deleted(1)]))
    crashed = PodState("demo-0-r0", 0, 0, "Failed", exit_code=1, reason="Error", finished="2026-11-25T12:10:00Z")
    obj, actions = step(obj, Observed(True, JobState(0, failed=True), [crashed, deleted(1)]))
    assert obj["status"]["lastFailure"]["worker"] == 0 and obj["status"]["lastFailure"]["action"] == "Count"
    assert obj["status"]["restarts"] == 1 and actions.delete_job


def test_worker_0_deleted_restarts_the_group_uncounted_and_records_it():
    obj, _ = step(in_place(), Observed())
    obj, actions = step(obj, Observed(True, JobState(0), [deleted(0), running()[1]]))
    status = obj["status"]
    assert status["phase"] == "Restarting" and actions.delete_job
    assert status["restarts"] == 1 and status["ignoredRestarts"] == 1
    assert status["recoveries"] == [{"worker": 0, "exitCode": 143, "reason": "PodDeleted",
                                     "recovered": "GroupRestart", "restart": 0, "time": "2026-11-25T12:00:00Z",
                                     "pod": "demo-0-old"}]
    # the new group's workers start: the restart's seconds
    obj, _ = step(obj, Observed(True, JobState(1), running(1, "2026-11-25T12:00:09Z")), NOW + timedelta(seconds=10))
    assert obj["status"]["recoveries"][0]["seconds"] == 9.0


def test_a_fail_job_rule_on_a_deleted_worker_fails_the_job_and_stops_the_rest():
    rules = [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [143]}}]
    obj, _ = step(in_place(rules=rules), Observed())
    obj, actions = step(obj, Observed(True, JobState(0), [running()[0], deleted(1)]))
    assert obj["status"]["phase"] == "Failed" and actions.delete_job and "recoveries" not in obj["status"]


def test_every_group_restart_is_recorded_without_in_place_restarts_too():
    obj, _ = step(training_job(), Observed())
    crashed = PodState("demo-1-x", 1, 0, "Failed", exit_code=3, reason="Error")
    obj, _ = step(obj, Observed(True, JobState(0, failed=True), [running()[0], crashed]))
    assert obj["status"]["recoveries"] == [{"worker": 1, "exitCode": 3, "reason": "Error", "recovered": "GroupRestart",
                                            "restart": 0, "time": "2026-11-25T12:00:00Z", "pod": "demo-1-x"}]
