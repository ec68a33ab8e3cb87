"""Each reconcile policy step on its own: the rule it enforces, its edges, and what it hands the
runtime. test_reconcile.py walks the steps together through a job's life."""

from __future__ import annotations

import json
from datetime import timedelta

from tandem.api.model import TrainingJob
from tandem.api.status import TrainingJobStatus
from tandem.controller.actions import ObjectRef
from tandem.controller.decision import Decision
from tandem.controller.observed import JobState, Observed, PodState
from tandem.controller.policy.after_finish import expire_after_finish, ttl_left
from tandem.controller.policy.deadline import enforce_deadline, requeue_before_deadline
from tandem.controller.policy.failure import failure_message, handle_failure, waiting_for_failed_pod
from tandem.controller.policy.metrics import METRICS_INTERVAL_SECONDS, schedule_metrics, with_metrics
from tandem.controller.policy.suspend import suspend

from .test_reconcile import NOW, pods, step, training_job

DEMO_JOB = ObjectRef("team-a", "demo")


def decision_for(obj, now=NOW):
    """A pass's Decision and the validated model, as reconcile builds them."""
    return Decision(obj, now), TrainingJob.from_dict({k: v for k, v in obj.items() if k != "status"})


# suspend

def test_suspend_does_nothing_unless_asked():
    decision, job = decision_for(training_job())
    assert not suspend(decision, job, Observed(True, JobState(0), pods(0, "Running", "Running")))
    assert decision.finish().status == {"restarts": 0, "observedGeneration": 1}


def test_suspend_deletes_a_live_job_once():
    obj = training_job(runPolicy={"suspend": True})
    decision, job = decision_for(obj)
    assert suspend(decision, job, Observed(True, JobState(0), pods(0, "Running", "Pending")))
    actions = decision.finish()
    assert actions.delete_job == DEMO_JOB and actions.status["phase"] == "Suspended"
    assert actions.status["workers"]["active"] == 2
    decision, job = decision_for(obj)
    assert suspend(decision, job, Observed(True, JobState(0, deleting=True), []))
    assert decision.finish().delete_job is None  # already going away


# deadline

def test_deadline_holds_until_the_second_it_passes():
    obj = training_job(status={"restarts": 0, "startTime": "2026-11-25T12:00:00Z"},
                       runPolicy={"activeDeadlineSeconds": 60})
    running = Observed(True, JobState(0), pods(0, "Running", "Running"))
    decision, job = decision_for(obj, NOW + timedelta(seconds=59))
    assert not enforce_deadline(decision, job.spec.run_policy, running)
    decision, job = decision_for(obj, NOW + timedelta(seconds=60))
    assert enforce_deadline(decision, job.spec.run_policy, running)
    actions = decision.finish()
    assert actions.delete_job == DEMO_JOB and actions.status["phase"] == "Failed"
    assert actions.status["completionTime"] == "2026-11-25T12:01:00Z"


def test_deadline_requeue_comes_back_when_it_passes_and_never_later():
    obj = training_job(status={"restarts": 0, "startTime": "2026-11-25T12:00:00Z"},
                       runPolicy={"activeDeadlineSeconds": 60})
    decision, job = decision_for(obj, NOW + timedelta(seconds=50))
    requeue_before_deadline(decision, job.spec.run_policy)
    assert decision.actions.requeue_after == 10.0
    decision.actions.requeue_after = 15.0  # e.g. the metrics interval: the deadline comes first
    requeue_before_deadline(decision, job.spec.run_policy)
    assert decision.actions.requeue_after == 10.0
    decision.actions.requeue_after = 15.0
    decision.now = NOW + timedelta(seconds=59.5)
    requeue_before_deadline(decision, job.spec.run_policy)
    assert decision.actions.requeue_after == 1.0  # never a busy loop


def test_no_deadline_no_requeue():
    decision, job = decision_for(training_job(status={"restarts": 0, "startTime": "2026-11-25T12:00:00Z"}))
    requeue_before_deadline(decision, job.spec.run_policy)
    assert decision.actions.requeue_after is None


# failure

def test_failure_message_names_the_lowest_failed_worker():
    failed = [PodState("demo-2-x", 2, 0, "Failed", exit_code=9, reason="Error"),
              PodState("demo-1-x", 1, 0, "Failed", exit_code=137, reason="OOMKilled", message="m" * 500),
              PodState("demo-0-x", 0, 0, "Running")]
    text = failure_message(failed, "fallback")
    assert text == "worker 1 (pod demo-1-x) failed with exit code 137 (OOMKilled): " + "m" * 200  # cut to 200
    assert failure_message(failed[2:], "fallback") == "fallback"


def test_job_failure_waits_for_its_pod_only_briefly():
    """After a direct read found no failed pod (handle_failure asks for one first, every time)."""
    job_failed = JobState(0, failed=True, failed_since="2026-11-25T12:00:00Z")
    assert waiting_for_failed_pod(job_failed, NOW + timedelta(seconds=9))
    assert not waiting_for_failed_pod(job_failed, NOW + timedelta(seconds=10))
    assert not waiting_for_failed_pod(JobState(0, failed=True), NOW)  # no time known: decide now


def test_failure_restarts_the_group_until_the_backoff_limit():
    failing = Observed(True, JobState(1, failed=True), pods(1, "Running", "Failed", exit_code=3))
    decision, job = decision_for(training_job(status={"restarts": 1}, runPolicy={"backoffLimit": 2}))
    assert handle_failure(decision, job, failing)
    actions = decision.finish()
    assert actions.delete_job == DEMO_JOB and actions.status["restarts"] == 2
    assert actions.status["phase"] == "Restarting" and "(2/2)" in actions.events[0].message

    decision, job = decision_for(training_job(status={"restarts": 2}, runPolicy={"backoffLimit": 2}))
    assert handle_failure(decision, job, Observed(True, JobState(2, failed=True), pods(2, "Running", "Failed", exit_code=3)))
    actions = decision.finish()
    assert actions.delete_job is None and actions.status["restarts"] == 2
    assert actions.status["phase"] == "Failed" and "worker 1" in actions.events[0].message


def test_no_failure_is_not_this_steps_business():
    decision, job = decision_for(training_job())
    assert not handle_failure(decision, job, Observed(True, JobState(0), pods(0, "Running", "Succeeded")))
    assert decision.actions.events == []


# after finish

def test_ttl_left():
    finished = NOW
    assert ttl_left(None, finished, NOW) is None
    assert ttl_left(30, None, NOW) is None
    assert ttl_left(30, finished, NOW + timedelta(seconds=10)) == 20.0
    assert ttl_left(0, finished, NOW) == 0.0


def test_after_finish_deletes_the_training_job_at_the_ttl():
    status = {"phase": "Failed", "restarts": 0, "completionTime": "2026-11-25T12:00:00Z"}
    decision, job = decision_for(training_job(status=status, runPolicy={"ttlSecondsAfterFinished": 0}))
    expire_after_finish(decision, job.spec.run_policy)
    assert decision.actions.delete_training_job == DEMO_JOB and decision.actions.requeue_after is None
    decision, job = decision_for(training_job(status=status))  # no TTL: kept for ever
    expire_after_finish(decision, job.spec.run_policy)
    assert decision.actions.delete_training_job is None and decision.actions.requeue_after is None


# metrics

def test_metrics_read_counts_a_tpu_slices_hosts_when_workers_is_unset():
    """The runtime used to read `spec.workers or 1` from the raw object: a TPU job that leaves
    workers unset was measured as one worker and its efficiency overstated."""
    obj = training_job(framework="tensorflow", strategy="tpu", workers=None,
                       tpu={"accelerator": "tpu-v5-lite-podslice", "topology": "4x4"},
                       metrics={"baselineThroughput": 50.0, "stragglerThreshold": 0.7})
    assert "workers" not in obj["spec"]
    decision, job = decision_for(obj)
    schedule_metrics(decision, job)
    read = decision.finish().read_metrics
    assert read is not None and read.workers == 4 == job.spec.tpu.shape().hosts
    assert (read.namespace, read.name, read.baseline_throughput, read.straggler_threshold) == ("team-a", "demo", 50.0, 0.7)
    assert decision.actions.requeue_after == METRICS_INTERVAL_SECONDS


def test_metrics_read_carries_the_status_the_pass_ends_with():
    obj, _ = step(training_job(), Observed())
    _, actions = step(obj, Observed(True, JobState(0), pods(0, "Running", "Running")))
    assert actions.read_metrics is not None and actions.read_metrics.status == actions.status
    assert actions.read_metrics.status["phase"] == "Running"


def test_disabled_metrics_are_never_read():
    decision, job = decision_for(training_job(metrics={"enabled": False}))
    schedule_metrics(decision, job)
    assert decision.finish().read_metrics is None and decision.actions.requeue_after is None


# the status written is the declared one

def _undeclared(model, path="status"):
    """Paths of fields the model does not declare (kept by extra="allow", pruned by the CRD)."""
    found = [f"{path}.{name}" for name in (model.model_extra or {})]
    for name, value in model:
        values = value if isinstance(value, list) else [value]
        for item in values:
            if hasattr(item, "model_extra"):
                found += _undeclared(item, f"{path}.{name}")
    return found


def test_every_status_field_reconcile_writes_is_declared():
    obj, _ = step(training_job(runPolicy={"backoffLimit": 1}, tensorboard={"enabled": True}), Observed())
    written = [obj["status"]]
    lives = [
        Observed(True, JobState(0), pods(0, "Running", "Running")),
        Observed(True, JobState(0, failed=True), pods(0, "Running", "Failed", exit_code=3)),
        Observed(True, None, []),
        Observed(True, JobState(1, complete=True), pods(1, "Succeeded", "Succeeded")),
    ]
    for observed in lives:
        obj, actions = step(obj, observed)
        written.append(actions.status)
        if actions.read_metrics is not None:
            figures = {"throughput": 10.0, "perWorker": [{"index": 0, "throughput": 5.0}], "scalingEfficiency": 0.9}
            written.append(with_metrics(actions.read_metrics.status, figures, NOW, 1))
            written.append(with_metrics(actions.read_metrics.status, None, NOW, 1, "no Ray"))
    for status in written:
        assert _undeclared(TrainingJobStatus.model_validate(status)) == []


# figures: bad ones cost the figures, never the phase; the write replaces the old ones

def _running_read():
    obj, _ = step(training_job(), Observed())
    _, actions = step(obj, Observed(True, JobState(0), pods(0, "Running", "Running")))
    assert actions.read_metrics is not None
    return actions.read_metrics


def _merge_patch(target, patch):
    """RFC 7386, as the API server applies a status merge patch: null deletes a key."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = _merge_patch(merged.get(key), value)
    return merged


def test_a_nan_throughput_never_blocks_the_phase():
    read = _running_read()
    figures = {"throughput": float("nan"), "perWorker": [{"index": 0, "throughput": float("inf")}]}
    status = with_metrics(read.status, figures, NOW, 1)
    json.dumps(status, allow_nan=False)  # the API server's JSON has no NaN: this is what it can take
    assert status["phase"] == "Running"
    metrics_condition = next(c for c in status["conditions"] if c["type"] == "MetricsAvailable")
    assert metrics_condition["status"] == "False" and "figures refused" in metrics_condition["message"]


def test_negative_figures_are_refused_too():
    status = with_metrics(_running_read().status, {"throughput": -5.0}, NOW, 1)
    assert status["metrics"]["available"] is False and "throughput" not in status["metrics"]


def test_a_recovered_straggler_is_cleared():
    read = _running_read()
    flagged = {"throughput": 10.0, "straggler": 1, "reason": "dropped malformed figures: total of 1/0",
               "perWorker": [{"index": 0, "throughput": 7.0}, {"index": 1, "throughput": 3.0}]}
    before = with_metrics(read.status, flagged, NOW, 1)
    assert before["metrics"]["straggler"] == 1
    recovered = {"throughput": 10.0, "perWorker": [{"index": 0, "throughput": 5.0}, {"index": 1, "throughput": 5.0}]}
    patch = with_metrics(before, recovered, NOW + timedelta(seconds=20), 1)
    assert patch["metrics"]["straggler"] is None and patch["metrics"]["reason"] is None
    stored = _merge_patch(before, patch)
    assert "straggler" not in stored["metrics"] and "reason" not in stored["metrics"]
    assert stored["metrics"]["throughput"] == 10.0 and stored["phase"] == "Running"
