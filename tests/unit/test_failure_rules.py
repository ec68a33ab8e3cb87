"""Failure rules and hang detection (docs/failure-rules.md), as pure decisions (milliseconds)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tandem.api import TrainingJob
from tandem.api.failure_rules import Failure, judge
from tandem.api.model import FailurePolicy
from tandem.controller.observed import JobState, Observed, PodState, pod_state
from tandem.controller.policy.metrics import with_metrics
from tandem.errors import SpecError
from tandem.figures import progress
from tests.support.specs import spec

from .test_reconcile import NOW, pods, step, training_job

RULES = {"rules": [
    {"name": "user-error", "action": "FailJob", "onExitCodes": {"operator": "In", "values": [2]}},
    {"name": "preempted", "action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
    {"action": "Count", "onReasons": ["Hung"]},
    {"action": "Ignore", "onExitCodes": {"operator": "NotIn", "values": [1, 2, 3]}},
]}


def policy(rules=RULES):
    return FailurePolicy.model_validate(rules)


# judging

@pytest.mark.parametrize("failure, action, rule", [
    (Failure(0, exit_code=2, reason="Error"), "FailJob", 0),
    (Failure(0, exit_code=137, conditions=frozenset({("DisruptionTarget", "True")})), "Ignore", 1),
    (Failure(0, reason="Hung"), "Count", 2),
    (Failure(0, exit_code=9, reason="Error"), "Ignore", 3),   # NotIn [1, 2, 3]
    (Failure(0, exit_code=1, reason="Error"), "Count", None),  # no rule: Count
    (Failure(None), "Count", None),                            # nothing known: no exit-code rule matches
    (Failure(0, conditions=frozenset({("DisruptionTarget", "False")})), "Count", None),
])
def test_the_first_matching_rule_decides(failure, action, rule):
    verdict = judge(failure, policy())
    assert (verdict.action, verdict.rule) == (action, rule)


def test_on_reasons_matches_the_disruption_reason_too():
    preemption = FailurePolicy.model_validate({"rules": [{"action": "Ignore", "onReasons": ["PreemptionByScheduler"]}]})
    assert judge(Failure(0, exit_code=137, reason="Error", disruption="PreemptionByScheduler"), preemption).action == "Ignore"
    assert judge(Failure(0, exit_code=137, reason="Error", disruption="DeletionByPodGC"), preemption).action == "Count"
    pod = pod_state({"metadata": {"name": "p", "labels": {"batch.kubernetes.io/job-completion-index": "0"}},
                     "status": {"phase": "Failed", "conditions": [
                         {"type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler"}]}})
    assert pod.disruption == "PreemptionByScheduler"

def test_no_rules_count_every_failure():
    assert judge(Failure(0, exit_code=2), FailurePolicy()).action == "Count"


@pytest.mark.parametrize("rules, words", [
    ({"rules": [{"action": "FailJob"}]}, "exactly one of onExitCodes"),
    ({"rules": [{"action": "FailJob", "onReasons": ["Hung"], "onExitCodes": {"operator": "In", "values": [2]}}]},
     "exactly one of"),
    ({"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [0, 2]}}]}, "must not contain 0"),
    ({"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [2, 2]}}]}, "twice"),
    ({"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [256]}}]}, "255"),
    ({"rules": [{"action": "Retry", "onReasons": ["Hung"]}]}, "FailJob"),
    ({"rules": [{"name": "a", "action": "Count", "onReasons": ["Hung"]},
                {"name": "a", "action": "Count", "onReasons": ["Error"]}]}, "used twice"),
])
def test_bad_rules_are_refused_naming_the_field(rules, words):
    with pytest.raises(SpecError) as error:
        TrainingJob.from_dict(spec(runPolicy={"failurePolicy": rules}))
    text = str(error.value)
    assert "spec.runPolicy.failurePolicy" in text and words in text


def test_a_progress_deadline_needs_metrics():
    with pytest.raises(SpecError, match=r"spec\.metrics: enabled must be true with runPolicy\.progressDeadlineSeconds"):
        TrainingJob.from_dict(spec(runPolicy={"progressDeadlineSeconds": 60}, metrics={"enabled": False}))
    with pytest.raises(SpecError, match="progressDeadlineSeconds"):
        TrainingJob.from_dict(spec(runPolicy={"progressDeadlineSeconds": 5}))  # under the minimum
    TrainingJob.from_dict(spec(runPolicy={"progressDeadlineSeconds": 60, "startupDeadlineSeconds": 300}))


# the operator: failures judged by the rules

def failed_pod(exit_code, conditions=(), index=1):
    return PodState(f"demo-{index}-x", index, 0, "Failed", exit_code=exit_code, reason="Error",
                    conditions=frozenset(conditions))


def with_rules(status=None, **policy_fields):
    return training_job(status=status, runPolicy={"backoffLimit": 1, "failurePolicy": RULES, **policy_fields})


def test_fail_job_rule_fails_at_once_and_names_the_rule():
    obj, _ = step(with_rules(), Observed())
    obj, actions = step(obj, Observed(True, JobState(0, failed=True), [failed_pod(2)]))
    status = obj["status"]
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert status["phase"] == "Failed" and failed["reason"] == "FailedByRule"
    assert "exit code 2" in failed["message"] and "failure rule 0 (user-error) says FailJob" in failed["message"]
    assert status["restarts"] == 0 and not actions.delete_job
    assert status["lastFailure"] == {"worker": 1, "pod": "demo-1-x", "exitCode": 2, "reason": "Error", "conditions": [],
                                     "action": "FailJob", "rule": 0, "ruleName": "user-error", "restart": 0,
                                     "time": "2026-11-25T12:00:00Z"}


def test_ignore_rule_restarts_without_counting_then_count_spends_the_limit():
    obj, _ = step(with_rules(), Observed())
    preempted = failed_pod(143, [("DisruptionTarget", "True")])
    for restart in range(3):  # preempted three times with backoffLimit 1: never counted
        obj["status"]["restarts"] = restart
        obj, actions = step(obj, Observed(True, JobState(restart, failed=True), [
            PodState(preempted.name, 1, restart, "Failed", exit_code=143, conditions=preempted.conditions)]))
        assert obj["status"]["phase"] == "Restarting" and actions.delete_job
        assert "says Ignore" in next(c["message"] for c in obj["status"]["conditions"] if c["type"] == "Restarting")
    assert obj["status"]["restarts"] == 3 and obj["status"]["ignoredRestarts"] == 3
    # a plain failure counts: 1 of 1, then the next fails the job
    obj, _ = step(obj, Observed(True, JobState(3, failed=True), [PodState("p", 0, 3, "Failed", exit_code=1)]))
    assert obj["status"]["phase"] == "Restarting" and obj["status"]["restarts"] == 4
    obj, _ = step(obj, Observed(True, JobState(4, failed=True), [PodState("p", 0, 4, "Failed", exit_code=1)]))
    failed = next(c for c in obj["status"]["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "BackoffLimitExceeded" and "after 1 restarts (and 3 not counted)" in failed["message"]


def test_the_disrupted_pod_is_the_root_cause_even_when_deleting():
    """An evicted pod is deleted as it fails; its peers fail after it, from the broken collective."""
    obj, _ = step(with_rules(), Observed())
    evicted = PodState("demo-1-x", 1, 0, "Failed", exit_code=137, deleting=True,
                       conditions=frozenset({("DisruptionTarget", "True")}))
    peer = PodState("demo-0-x", 0, 0, "Failed", exit_code=1, reason="Error")
    obj, _ = step(obj, Observed(True, JobState(0, failed=True), [peer, evicted]))
    assert obj["status"]["lastFailure"]["worker"] == 1 and obj["status"]["lastFailure"]["action"] == "Ignore"


def test_a_deleting_pod_that_ends_failed_is_no_failure_while_its_job_has_not_failed():
    """A queue that suspends the Job (Kueue) or a restart in progress terminates pods, which may end
    Failed while being deleted: no failure to judge until the Job itself fails."""
    obj, _ = step(with_rules(), Observed())
    terminated = PodState("demo-0-x", 0, 0, "Failed", exit_code=143, reason="Error", deleting=True)
    obj, actions = step(obj, Observed(True, JobState(0), [terminated]))
    assert obj["status"].get("restarts") == 0 and "lastFailure" not in obj["status"] and not actions.delete_job


def test_pod_state_reads_conditions_and_finish_time():
    pod = pod_state({"metadata": {"name": "p", "labels": {"batch.kubernetes.io/job-completion-index": "0"}},
                     "status": {"phase": "Failed", "conditions": [{"type": "DisruptionTarget", "status": "True"}],
                                "containerStatuses": [{"state": {"terminated": {
                                    "exitCode": 137, "reason": "Error", "finishedAt": "2026-11-25T12:00:01Z"}}}]}})
    assert ("DisruptionTarget", "True") in pod.conditions and pod.finished == "2026-11-25T12:00:01Z"


# progress and hangs (figures/progress.py, pure)

def test_progress_clock_starts_at_the_first_step_and_names_who_went_silent_first():
    t = NOW
    p = progress.observe(None, 0, {}, t)  # running, no step yet: startup is not a hang
    assert progress.hang(p, 0, 30, None) is None
    p = progress.observe(p, 0, {0: 5, 1: 5}, t + timedelta(seconds=100))
    assert progress.hang(p, 0, 30, None) is None
    p = progress.observe(p, 0, {0: 6, 1: 7}, t + timedelta(seconds=115))   # both step
    p = progress.observe(p, 0, {0: 6, 1: 8}, t + timedelta(seconds=130))   # worker 0 stuck
    p = progress.observe(p, 0, {0: 6, 1: 8}, t + timedelta(seconds=145))
    assert progress.hang(p, 0, 30, None) is None  # 15 s since the last step
    p = progress.observe(p, 0, {0: 6, 1: 8}, t + timedelta(seconds=160))
    found = progress.hang(p, 0, 30, None)
    assert found is not None and found.worker == 0 and found.last_step == 8 and found.last_worker == 1
    assert "silent first: worker 0 (step 6" in found.message() and "last step seen is 8 (worker 1)" in found.message()


def test_startup_deadline_bounds_the_time_to_the_first_step():
    p = progress.observe(None, 0, {}, NOW)
    p = progress.observe(p, 0, {}, NOW + timedelta(seconds=299))
    assert progress.hang(p, 0, 30, 300) is None
    p = progress.observe(p, 0, {}, NOW + timedelta(seconds=300))
    found = progress.hang(p, 0, 30, 300)
    assert found is not None and found.startup and "startupDeadlineSeconds (300)" in found.message()
    assert progress.hang(p, 0, 30, None) is None  # no startup deadline: startup may take any time


def test_after_a_restart_the_earlier_groups_steps_are_the_baseline():
    p = progress.observe(None, 0, {0: 50}, NOW)
    p = progress.observe(p, 1, {0: 50}, NOW + timedelta(seconds=15))  # new group: 50 is not its step
    assert p.last_step_at is None and p.since == "2026-11-25T12:00:15Z"
    p = progress.observe(p, 1, {0: 51}, NOW + timedelta(seconds=30))
    assert p.last_step_at == "2026-11-25T12:00:30Z"
    assert progress.hang(p, 0, 30, None) is None  # figures of another group judge nothing


# the operator: hangs through status.progress

def running_with_progress(**policy_fields):
    obj, _ = step(with_rules(**policy_fields), Observed())
    running = Observed(True, JobState(0), pods(0, "Running", "Running"))
    obj, _ = step(obj, running)
    assert obj["status"]["phase"] == "Running"
    return obj, running


def read(obj, steps, at):
    figures = {"perWorker": [{"index": i, "throughput": 1.0, "steps": n} for i, n in steps.items()]}
    obj["status"] = with_metrics(obj["status"], figures, at, 1, track_progress=True)
    return obj


def test_a_silent_group_is_restarted_as_hung_under_the_failure_rules():
    obj, running = running_with_progress(progressDeadlineSeconds=30)
    obj = read(obj, {0: 3, 1: 3}, NOW)
    obj = read(obj, {0: 4, 1: 5}, NOW + timedelta(seconds=15))
    obj = read(obj, {0: 4, 1: 5}, NOW + timedelta(seconds=30))
    obj, actions = step(obj, running, NOW + timedelta(seconds=31))
    assert obj["status"]["phase"] == "Running" and not actions.delete_job
    obj = read(obj, {0: 4, 1: 5}, NOW + timedelta(seconds=45))
    obj, actions = step(obj, running, NOW + timedelta(seconds=46))
    restarting = next(c for c in obj["status"]["conditions"] if c["type"] == "Restarting")
    assert obj["status"]["phase"] == "Restarting" and restarting["reason"] == "Hung" and actions.delete_job
    assert "last step seen is 5 (worker 1)" in restarting["message"]
    assert "silent first: worker 0 (step 4" in restarting["message"]
    assert obj["status"]["lastFailure"]["reason"] == "Hung" and obj["status"]["lastFailure"]["rule"] == 2
    assert obj["status"]["restarts"] == 1


def test_figures_that_cannot_be_read_are_not_a_hang():
    obj, running = running_with_progress(progressDeadlineSeconds=30)
    obj = read(obj, {0: 3, 1: 3}, NOW)
    obj["status"] = with_metrics(obj["status"], None, NOW + timedelta(seconds=60), 1, "gateway down",
                                 track_progress=True)
    obj, actions = step(obj, running, NOW + timedelta(seconds=61))
    assert obj["status"]["phase"] == "Running" and not actions.delete_job


def test_a_fail_job_rule_on_hung_stops_the_workers():
    obj, _ = step(training_job(runPolicy={"progressDeadlineSeconds": 30, "failurePolicy": {
        "rules": [{"action": "FailJob", "onReasons": ["Hung"]}]}}), Observed())
    running = Observed(True, JobState(0), pods(0, "Running", "Running"))
    obj, _ = step(obj, running)
    obj = read(obj, {0: 3, 1: 3}, NOW)
    obj = read(obj, {0: 3, 1: 3}, NOW + timedelta(seconds=30))
    obj, actions = step(obj, running, NOW + timedelta(seconds=31))
    assert obj["status"]["phase"] == "Failed" and actions.delete_job  # hung pods do not end by themselves


def test_a_failed_pod_deleted_from_the_cache_stays_its_jobs_failure():
    """The pod GC fails a pod of a lost node (DisruptionTarget) and force-deletes it; the Job may
    be seen failed only after the DELETED event: the failure rules still see the pod."""
    from tandem.controller.cache import Cache

    cache = Cache()
    pod = {"metadata": {"name": "demo-0-x", "namespace": "default", "resourceVersion": "5",
                        "labels": {"tandem.dev/job-name": "demo", "batch.kubernetes.io/job-completion-index": "0"}},
           "status": {"phase": "Failed", "conditions": [{"type": "DisruptionTarget", "status": "True"}]}}
    running = {**pod, "metadata": {**pod["metadata"], "name": "demo-1-x"}, "status": {"phase": "Running"}}
    cache.put_child("Pod", pod)
    cache.put_child("Pod", running)
    cache.put_child("Pod", pod, deleted=True)
    cache.put_child("Pod", running, deleted=True)  # a pod that did not fail is forgotten
    kept = cache.pods_of(("default", "demo"))
    assert [p["metadata"]["name"] for p in kept] == ["demo-0-x"] and kept[0]["metadata"]["deletionTimestamp"]
    state = pod_state(kept[0])
    assert state.deleting and ("DisruptionTarget", "True") in state.conditions
    cache.put_training_job({"metadata": {"name": "demo", "namespace": "default"}}, deleted=True)
    assert cache.pods_of(("default", "demo")) == []
