"""What runPolicy decides, written once (api/restart.py, api/deadline.py), and both executors
carrying out the same decision: the operator's reconcile and `tandem run`'s restart loop."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from rich.console import Console

from tandem.api import TrainingJob
from tandem.api.deadline import deadline_message, deadline_passed, seconds_left
from tandem.api.failure_rules import Failure
from tandem.api.model import RunPolicy
from tandem.api.restart import Restarts, decide_restart
from tandem.controller.observed import JobState, Observed, PodState
from tandem.errors import Interrupted
from tandem.local import executor as local_executor
from tandem.local.executor import Attempt, LocalExecutor, WorkerExit

from .test_reconcile import NOW, pods, step, training_job

RULES = {"rules": [
    {"name": "user-error", "action": "FailJob", "onExitCodes": {"operator": "In", "values": [2]}},
    {"name": "flaky", "action": "Ignore", "onExitCodes": {"operator": "In", "values": [75]}},
    {"name": "hung", "action": "FailJob", "onReasons": ["Hung"]},
]}


def run_policy(limit, rules=RULES):
    return RunPolicy.model_validate({"backoffLimit": limit, "failurePolicy": rules})


def error(code):
    return Failure(1, exit_code=code, reason="Error")


# the decision

@pytest.mark.parametrize("failure, limit, so_far, restart, reason, after, words", [
    # Count (no rule matched): restarted while fewer than backoffLimit counted restarts were spent
    (error(1), 2, Restarts(0, 0), True, "", Restarts(1, 0), "restarting all workers (1/2)"),
    (error(1), 2, Restarts(1, 0), True, "", Restarts(2, 0), "restarting all workers (2/2)"),
    (error(1), 2, Restarts(2, 0), False, "BackoffLimitExceeded", Restarts(2, 0),
     "backoffLimit 2 reached after 2 restarts"),
    (error(1), 0, Restarts(0, 0), False, "BackoffLimitExceeded", Restarts(0, 0),
     "backoffLimit 0 reached after 0 restarts"),
    # ignored restarts do not count: 4 restarts, 3 of them ignored, is 1 of 2
    (error(1), 2, Restarts(4, 3), True, "", Restarts(5, 3), "restarting all workers (2/2)"),
    (error(1), 2, Restarts(5, 3), False, "BackoffLimitExceeded", Restarts(5, 3),
     "backoffLimit 2 reached after 2 restarts (and 3 not counted)"),
    # FailJob: failed at once, however many restarts are left
    (error(2), 3, Restarts(0, 0), False, "FailedByRule", Restarts(0, 0),
     "failure rule 0 (user-error) says FailJob: not restarted"),
    # Ignore: restarted even with the limit spent, and not counted
    (error(75), 1, Restarts(1, 0), True, "", Restarts(2, 1),
     "failure rule 1 (flaky) says Ignore: restarting all workers, not counted (1/1)"),
    # a hang (no exit code) matches onReasons only; no exit-code rule, In or NotIn
    (Failure(0, reason="Hung"), 3, Restarts(0, 0), False, "FailedByRule", Restarts(0, 0),
     "failure rule 2 (hung) says FailJob: not restarted"),
    # nothing known of the failure: Count
    (Failure(None), 1, Restarts(0, 0), True, "", Restarts(1, 0), "restarting all workers (1/1)"),
])
def test_the_restart_decision(failure, limit, so_far, restart, reason, after, words):
    outcome = decide_restart(failure, run_policy(limit), so_far)
    assert (outcome.restart, outcome.reason, outcome.after) == (restart, reason, after)
    assert outcome.describe() == words


def test_a_hang_without_a_rule_is_counted():
    outcome = decide_restart(Failure(0, reason="Hung"), run_policy(1, {"rules": []}), Restarts())
    assert outcome.restart and outcome.verdict.action == "Count" and outcome.after.counted == 1


# a disrupted pod: the built-in rule after the job's own

PREEMPTED = frozenset({("DisruptionTarget", "True")})


@pytest.mark.parametrize("failure, action, counted", [
    # preempted, evicted, its node lost: Kubernetes sets DisruptionTarget
    (Failure(1, exit_code=143, reason="Error", conditions=PREEMPTED), "Ignore", 0),
    (Failure(1, conditions=PREEMPTED), "Ignore", 0),  # lost before its container ended: no exit code
    # `kubectl delete pod` or a drain: no condition, but the pod was deleting and its container
    # ended as a deletion ends it (SIGTERM, or SIGKILL after the grace period)
    (Failure(1, exit_code=143, reason="Error", deleting=True), "Ignore", 0),
    (Failure(1, exit_code=137, reason="Error", deleting=True), "Ignore", 0),
    # the job's own failures, deleting or not, still count
    (Failure(1, exit_code=137, reason="OOMKilled", deleting=True), "Count", 1),
    (Failure(1, exit_code=1, reason="Error", deleting=True), "Count", 1),
    (Failure(1, exit_code=143, reason="Error"), "Count", 1),  # SIGTERM from inside the pod: no deletion
])
def test_a_disrupted_pod_does_not_spend_the_backoff_limit(failure, action, counted):
    """backoffLimit 0 and no rules: a disruption restarts the group uncounted, anything else fails the job."""
    outcome = decide_restart(failure, run_policy(1, {"rules": []}), Restarts())
    assert (outcome.verdict.action, outcome.after.counted) == (action, counted)
    if action == "Ignore":
        assert outcome.restart and outcome.after == Restarts(1, 1)
        assert outcome.verdict.builtin and outcome.verdict.rule is None
        assert outcome.describe() == "built-in rule (disrupted-pod) says Ignore: restarting all workers, not counted (0/1)"
    zero = decide_restart(failure, run_policy(0, {"rules": []}), Restarts())
    assert zero.restart == (action == "Ignore")


def test_the_jobs_own_rules_come_before_the_built_in_one():
    """A job that wants a disruption counted, or fatal, says so with a rule of its own."""
    counted = {"rules": [{"name": "count-them", "action": "Count", "onPodConditions": [{"type": "DisruptionTarget"}]}]}
    outcome = decide_restart(Failure(1, exit_code=143, conditions=PREEMPTED), run_policy(1, counted), Restarts())
    assert (outcome.verdict.action, outcome.verdict.rule, outcome.after) == ("Count", 0, Restarts(1, 0))
    deleted = Failure(1, exit_code=143, reason="Error", deleting=True)
    fatal = {"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [143]}}]}
    assert decide_restart(deleted, run_policy(1, fatal), Restarts()).reason == "FailedByRule"


def test_the_operator_restarts_a_deleted_pods_group_uncounted():
    """reconcile with backoffLimit 0: a worker pod deleted by hand (exit 143, no condition) restarts
    the group, recorded as the built-in rule's Ignore; a plain failure after it fails the job."""
    obj, _ = step(training_job(runPolicy={"backoffLimit": 0}), Observed())
    deleted = PodState("demo-1-x", 1, 0, "Failed", exit_code=143, reason="Error", deleting=True)
    obj, actions = step(obj, Observed(True, JobState(0, failed=True), [PodState("demo-0-x", 0, 0, "Running"), deleted]))
    status = obj["status"]
    assert status["phase"] == "Restarting" and actions.delete_job
    assert (status["restarts"], status["ignoredRestarts"]) == (1, 1)
    assert status["lastFailure"]["action"] == "Ignore" and status["lastFailure"]["rule"] is None
    assert status["lastFailure"]["ruleName"] == "disrupted-pod"
    message = next(c["message"] for c in status["conditions"] if c["type"] == "Restarting")
    assert message == ("worker 1 (pod demo-1-x) failed with exit code 143 (Error) [pod deleted]; built-in rule "
                       "(disrupted-pod) says Ignore: restarting all workers, not counted (0/0)")
    obj, _ = step(obj, Observed(True, JobState(1, failed=True), [PodState("p", 0, 1, "Failed", exit_code=1)]))
    assert obj["status"]["phase"] == "Failed"


# the deadline's clock

def test_the_deadline_passes_at_its_second():
    policy = RunPolicy.model_validate({"activeDeadlineSeconds": 60})
    assert not deadline_passed(policy, 59.9) and deadline_passed(policy, 60) and deadline_passed(policy, 61)
    assert seconds_left(policy, 45) == 15
    assert deadline_message(policy) == "the job ran longer than activeDeadlineSeconds (60)"


def test_no_deadline_never_passes():
    assert seconds_left(RunPolicy(), 10**9) is None and not deadline_passed(RunPolicy(), 10**9)


def test_the_operator_starts_the_clock_once_and_time_suspended_counts():
    """status.startTime is written by the first pass not suspended, and a suspension does not stop
    the clock: a job resumed after its deadline fails at once."""
    obj, _ = step(training_job(runPolicy={"activeDeadlineSeconds": 60, "suspend": True}), Observed())
    assert "startTime" not in obj["status"]  # created suspended: not started
    obj["spec"]["runPolicy"]["suspend"] = False
    obj, _ = step(obj, Observed(), NOW + timedelta(seconds=30))
    assert obj["status"]["startTime"] == "2026-11-25T12:00:30Z"
    obj["spec"]["runPolicy"]["suspend"] = True
    obj, _ = step(obj, Observed(True, JobState(0), pods(0, "Running", "Running")), NOW + timedelta(seconds=40))
    assert obj["status"]["phase"] == "Suspended" and obj["status"]["startTime"] == "2026-11-25T12:00:30Z"
    obj["spec"]["runPolicy"]["suspend"] = False
    obj, _ = step(obj, Observed(True), NOW + timedelta(seconds=90))
    failed = next(c for c in obj["status"]["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "DeadlineExceeded"
    assert failed["message"] == "the job ran longer than activeDeadlineSeconds (60)"


# both executors, the same failures

#: Each scenario: the workers' exit codes, one group after another (0: the group succeeded), and
#: the backoffLimit. The operator and `tandem run` must restart as often and end the same way.
SCENARIOS = [
    ([3, 3, 0], 2),        # counted twice, then succeeds
    ([3, 3, 3], 1),        # the limit spent: BackoffLimitExceeded
    ([75, 75, 3, 3], 1),   # ignored twice, counted once, then over the limit
    ([75, 2], 3),          # ignored, then FailJob
    ([3], 0),              # no restart allowed
]


def operator_run(codes, limit):
    """The groups' failures through reconcile: (restarts, ignored, final phase and reason, the messages)."""
    obj, _ = step(training_job(runPolicy={"backoffLimit": limit, "failurePolicy": RULES}), Observed())
    messages = []
    for restart, code in enumerate(codes):
        obj, _ = step(obj, Observed(True, JobState(restart), pods(restart, "Running", "Running")))
        assert obj["status"]["phase"] == "Running"
        if code == 0:
            observed = Observed(True, JobState(restart, complete=True), pods(restart, "Succeeded", "Succeeded"))
        else:
            observed = Observed(True, JobState(restart, failed=True), [
                PodState("demo-0-x", 0, restart, "Running"),
                PodState("demo-1-x", 1, restart, "Failed", exit_code=code, reason="Error")])
        obj, _ = step(obj, observed)
        phase = obj["status"]["phase"]
        messages.append(next(c["message"] for c in obj["status"]["conditions"] if c["type"] == phase))
        if phase in ("Succeeded", "Failed"):
            break
    reason = next(c["reason"] for c in obj["status"]["conditions"] if c["type"] == phase)
    return obj["status"]["restarts"], obj["status"].get("ignoredRestarts", 0), phase, reason, messages


def local_run(codes, limit, tmp_path, monkeypatch):
    """The same failures through LocalExecutor.run()'s restart loop, each group's run replaced by
    the scripted exit codes (the loop is what is tested; the processes are tests/local's)."""
    job = TrainingJob.from_dict(training_job(runPolicy={"backoffLimit": limit, "failurePolicy": RULES}))
    output = io.StringIO()
    executor = LocalExecutor(job, run_root=tmp_path, console=Console(file=output, width=300), gpu_env=[{}, {}])
    script = iter(codes)

    def run_group(attempt_number, so_far):
        code = next(script)
        failed = WorkerExit(1, code, tmp_path / "log") if code else None
        return Attempt(so_far.total, [], 0.0, failed, "Error" if code else "")

    monkeypatch.setattr(executor, "_run_group", run_group)
    monkeypatch.setattr(local_executor, "become_subreaper", lambda: None)
    result = executor.run()
    return result, output.getvalue()


@pytest.mark.parametrize("codes, limit", SCENARIOS)
def test_both_executors_restart_and_end_alike(codes, limit, tmp_path, monkeypatch):
    restarts, ignored, phase, reason, messages = operator_run(codes, limit)
    result, printed = local_run(codes, limit, tmp_path, monkeypatch)
    assert (result.restarts, result.ignored_restarts) == (restarts, ignored)
    assert ("Succeeded" if result.succeeded else "Failed") == phase
    # every restart, and the failure, the operator's conditions tell, `tandem run` told in the same words
    told = [message.split("; ", 1)[1] for message in messages if "; " in message]
    assert len(told) == restarts + (phase == "Failed")
    for words in told:
        assert words in printed, (words, printed)
    if phase == "Failed":
        assert reason in ("BackoffLimitExceeded", "FailedByRule")
        assert result.attempts[-1].verdict is not None


def test_a_stopped_tandem_run_is_not_a_failure(tmp_path, monkeypatch):
    """Ctrl-C or SIGTERM of `tandem run` (a local preemption) interrupts the group: nothing is judged
    or counted, even with backoffLimit 0 (the run ends Interrupted, exit 130, not Failed)."""
    job = TrainingJob.from_dict(training_job(runPolicy={"backoffLimit": 0}))
    output = io.StringIO()
    executor = LocalExecutor(job, run_root=tmp_path, console=Console(file=output, width=300), gpu_env=[{}, {}])

    def stopped(attempt_number, so_far):
        raise Interrupted("interrupted")

    monkeypatch.setattr(executor, "_run_group", stopped)
    monkeypatch.setattr(local_executor, "become_subreaper", lambda: None)
    result = executor.run()
    assert result.interrupted and result.exit_code == 130 and result.restarts == 0 and result.attempts == []
    assert "backoffLimit" not in output.getvalue() and "restarting" not in output.getvalue()
