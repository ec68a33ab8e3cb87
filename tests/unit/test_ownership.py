"""Ownership of children, refused creates and invalid edits: each
decision on its own, pure and without a cluster. tests/cluster/test_ownership.py runs the same
cases against the real control plane and the real operator."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from hypothesis import given

from tandem.api.status import rfc3339
from tandem.contract import (
    CHILD_REJECTED,
    DNS1035_LABEL_PATTERN,
    MAX_JOB_NAME,
    MAX_LABEL,
    NAME_CONFLICT,
    tensorboard_name,
)
from tandem.controller.apiclient import ApiError
from tandem.controller.cache import Cache
from tandem.controller.observed import ALREADY_EXISTS, FAILED_CREATE, JobState, Observed, Refusal, observe
from tandem.controller.policy.refusals import FAILED_CREATE_GRACE_SECONDS, RETRY_CAP_SECONDS, retry_delay
from tandem.controller.reconcile import reconcile
from tandem.controller.writer import MESSAGE_LIMIT, NAMESPACE_TERMINATING, server_words
from tests.support.specs import names

from .test_reconcile import NOW, POLICY, pods, step, training_job


def owned(kind, name, uid, owner_kind="TrainingJob", owner_uid="u-1", **extra):
    meta = {"name": name, "namespace": "team-a", "uid": uid, "labels": {"tandem.dev/job-name": "demo"},
            "ownerReferences": [{"kind": owner_kind, "name": "demo", "uid": owner_uid, "controller": True}]}
    return {"kind": kind, "metadata": {**meta, **extra.pop("metadata", {})}, **extra}


def condition(obj, type_):
    return next((c for c in obj["status"].get("conditions", []) if c["type"] == type_), None)


def worker_pod(index, job_uid, phase="Running"):
    return {"metadata": {"name": f"demo-{index}-x", "labels": {"batch.kubernetes.io/job-completion-index": str(index)},
                         "annotations": {"tandem.dev/restart": "0"},
                         "ownerReferences": [{"kind": "Job", "name": "demo", "uid": job_uid, "controller": True}]},
            "status": {"phase": phase}}


# observe: only what carries this TrainingJob's uid is its child

def test_children_owned_by_the_uid_are_the_jobs():
    service, job = owned("Service", "demo", "s-1"), owned("Job", "demo", "j-1")
    observed = observe("u-1", service, job, [worker_pod(0, "j-1"), worker_pod(1, "j-1")])
    assert observed.service and observed.job is not None and observed.job.uid == "j-1"
    assert len(observed.pods) == 2 and observed.refusals == []


def test_a_foreign_service_with_the_jobs_name_and_label_is_a_conflict_not_a_child():
    foreign = owned("Service", "demo", "s-9", owner_kind="Deployment", owner_uid="d-9")
    observed = observe("u-1", foreign, None, [])
    assert not observed.service
    (conflict,) = observed.refusals
    assert conflict.conflict and conflict.kind == "Service" and conflict.name == "demo"
    assert "Deployment demo (uid d-9)" in conflict.message


def test_an_unowned_object_is_a_conflict_too():
    bare = {"kind": "Service", "metadata": {"name": "demo", "labels": {"tandem.dev/job-name": "demo"}}}
    (conflict,) = observe("u-1", bare, None, []).refusals
    assert "no owner" in conflict.message


def test_the_old_training_jobs_job_and_its_pods_are_not_adopted():
    """Deleted and created again before the garbage collector ran: the same name, a new uid."""
    old_job = owned("Job", "demo", "j-old", owner_uid="u-old",
                    status={"conditions": [{"type": "Complete", "status": "True"}]})
    observed = observe("u-1", None, old_job, [worker_pod(0, "j-old", "Succeeded")])
    assert observed.job is None and observed.pods == []
    assert [r.kind for r in observed.refusals] == ["Job"] and "uid u-old" in observed.refusals[0].message


def test_pods_of_another_job_are_not_the_jobs_workers():
    observed = observe("u-1", None, owned("Job", "demo", "j-1"), [worker_pod(0, "j-1"), worker_pod(1, "j-other")])
    assert [p.index for p in observed.pods] == [0]


# reconcile: a conflict creates nothing and says so

def test_conflict_creates_nothing_and_reports_name_conflict():
    foreign = owned("Service", "demo", "s-9", owner_uid="u-someone")
    obj, actions = step(training_job(), observe("u-1", foreign, None, []))
    assert actions.create == []
    held = condition(obj, NAME_CONFLICT)
    assert held["status"] == "True" and "Service demo" in held["message"] and "u-someone" in held["message"]
    assert obj["status"]["phase"] == "Pending" and condition(obj, "Pending")["reason"] == NAME_CONFLICT
    assert actions.requeue_after is None  # a watched object: its going away brings the job back


def test_stale_completed_job_never_makes_the_new_training_job_succeed():
    old_job = owned("Job", "demo", "j-old", owner_uid="u-old",
                    status={"conditions": [{"type": "Complete", "status": "True"}]})
    old_service = owned("Service", "demo", "s-old", owner_uid="u-old")
    obj = training_job()
    for _ in range(3):
        obj, actions = step(obj, observe("u-1", old_service, old_job, [worker_pod(0, "j-old", "Succeeded")]))
        assert obj["status"]["phase"] == "Pending" and actions.create == []
    assert condition(obj, NAME_CONFLICT)["status"] == "True"
    # the old Job is gone: the new TrainingJob creates its own group
    obj, actions = step(obj, observe("u-1", None, None, []))
    assert [o["kind"] for o in actions.create] == ["Service", "NetworkPolicy", "Job"]
    assert condition(obj, NAME_CONFLICT)["status"] == "False"


def test_conflict_found_at_create_is_retried_with_backoff():
    """An unlabelled foreign Service is not in the watches: only the create's 409 finds it."""
    refusal = Refusal("Service", "demo", ALREADY_EXISTS, "Service demo exists and is not this TrainingJob's: owned by no owner",
                      attempts=2, at="2026-11-25T12:00:00Z")
    obj, actions = step(training_job(), Observed(refusals=[refusal]))
    assert actions.create == [] and actions.requeue_after == 4.0
    assert "next try at 2026-11-25T12:00:04Z" in condition(obj, NAME_CONFLICT)["message"]
    _, actions = step(obj, Observed(refusals=[refusal]), NOW + timedelta(seconds=4))
    assert [o["kind"] for o in actions.create] == ["Service", "NetworkPolicy", "Job"]


# refused creates: the server's words in a condition, exponential backoff

def test_backoff_doubles_up_to_the_cap():
    assert [retry_delay(n) for n in range(1, 6)] == [2.0, 4.0, 8.0, 16.0, 32.0]
    assert retry_delay(30) == RETRY_CAP_SECONDS


def test_rejected_create_shows_the_servers_message_and_waits_for_the_retry():
    message = 'jobs.batch "demo" is forbidden: exceeded quota: no-jobs, requested: count/jobs.batch=1'
    refusal = Refusal("Job", "demo", "Forbidden", message, attempts=3, at="2026-11-25T12:00:00Z")
    obj, actions = step(training_job(), Observed(service=True, refusals=[refusal], network_policy=POLICY))
    rejected = condition(obj, CHILD_REJECTED)
    assert rejected["status"] == "True" and rejected["reason"] == "Forbidden" and message in rejected["message"]
    assert obj["status"]["phase"] == "Pending" and condition(obj, "Pending")["reason"] == CHILD_REJECTED
    assert actions.create == [] and actions.requeue_after == 8.0
    assert [e.type for e in actions.events] == ["Warning"]
    # due: tried again; the condition stays until a create succeeds
    obj2, actions = step(obj, Observed(service=True, refusals=[refusal], network_policy=POLICY), NOW + timedelta(seconds=8))
    assert [o["kind"] for o in actions.create] == ["Job"]
    # created: resolved
    obj3, _ = step(obj2, Observed(True, JobState(0), pods(0, "Pending", "Pending")), NOW + timedelta(seconds=9))
    assert condition(obj3, CHILD_REJECTED)["status"] == "False"


def test_the_status_is_not_rewritten_while_waiting_for_the_retry():
    refusal = Refusal("Job", "demo", "Forbidden", "quota", attempts=1, at="2026-11-25T12:00:00Z")
    obj, _ = step(training_job(), Observed(service=True, refusals=[refusal], network_policy=POLICY))
    _, actions = step(obj, Observed(service=True, refusals=[refusal], network_policy=POLICY), NOW + timedelta(seconds=1))
    assert actions.status == {} and actions.events == []


def test_pods_refused_to_the_job_controller_are_asked_for_and_reported():
    job = JobState(0, uid="j-1", created="2026-11-25T11:59:00Z")
    obj, actions = step(training_job(), Observed(True, job, []))
    assert actions.read_failed_creates is not None and actions.read_failed_creates.job_uid == "j-1"
    assert actions.requeue_after == 30.0  # no refusal yet, the Job a minute old: every half of its age
    message = 'pods "demo-0-abc" is forbidden: exceeded quota: no-pods, requested: pods=1, used: pods=0, limited: pods=0'
    failed = Refusal("Pod", "demo", FAILED_CREATE, message, attempts=4, at="2026-11-25T12:00:00Z")
    obj, actions = step(obj, Observed(True, job, [], [failed]))
    rejected = condition(obj, CHILD_REJECTED)
    assert rejected["status"] == "True" and message in rejected["message"]
    assert actions.requeue_after == 16.0  # looked at less often while it goes on
    # an event from before this Job (an earlier group's) is not about it
    stale = Refusal("Pod", "demo", FAILED_CREATE, message, attempts=4, at="2026-11-25T11:58:00Z")
    fresh_obj, _ = step(training_job(), Observed(True, job, [], [stale]))
    assert condition(fresh_obj, CHILD_REJECTED) is None
    # every pod there: resolved, nothing more to read
    obj, actions = step(obj, Observed(True, job, pods(0, "Running", "Running"), [failed]))
    assert condition(obj, CHILD_REJECTED)["status"] == "False" and actions.read_failed_creates is None


def test_the_job_controller_gets_a_few_seconds_before_its_events_are_read():
    """Each read lists the namespace's events: made for every Job not yet reached by a busy Job
    controller, thousands of them timed out at 10,000 jobs."""
    job = JobState(0, uid="j-1", created=rfc3339(NOW - timedelta(seconds=3)))
    _, actions = step(training_job(), Observed(True, job, []))
    assert actions.read_failed_creates is None
    assert actions.requeue_after == pytest.approx(FAILED_CREATE_GRACE_SECONDS - 3)
    _, actions = step(training_job(), Observed(True, job, []), NOW + timedelta(seconds=FAILED_CREATE_GRACE_SECONDS - 3))
    assert actions.read_failed_creates is not None and actions.read_failed_creates.job_uid == "j-1"
    assert actions.requeue_after == FAILED_CREATE_GRACE_SECONDS / 2
    # a Job the Job controller has not reached for ten minutes is read for every five
    _, actions = step(training_job(), Observed(True, job, []), NOW + timedelta(seconds=603))
    assert actions.read_failed_creates is not None and actions.requeue_after == 300.0


def test_server_words_are_read_from_the_status_body_and_bounded():
    error = ApiError(422, "Unprocessable Entity", json.dumps({"kind": "Status", "reason": "Invalid", "message": "x" * 5000}))
    reason, message = server_words(error)
    assert reason == "Invalid" and len(message) == MESSAGE_LIMIT
    error.body = "not json"
    assert server_words(error) == ("Unprocessable Entity", "Unprocessable Entity")


def test_a_namespace_being_deleted_is_named_as_such_not_as_a_permission_refusal():
    # The API server's answer to a create in a terminating namespace, as v1.33 sends it.
    error = ApiError(403, "Forbidden")
    message = 'jobs.batch "victim" is forbidden: unable to create new content in namespace t because it is being terminated'
    error.body = json.dumps({"kind": "Status", "reason": "Forbidden", "message": message,
                             "details": {"name": "victim", "kind": "jobs",
                                         "causes": [{"reason": "NamespaceTerminating", "field": "metadata.namespace"}]}})
    assert server_words(error) == (NAMESPACE_TERMINATING, message)
    error.body = json.dumps({"kind": "Status", "reason": "Forbidden", "message": "no rights", "details": {"causes": []}})
    assert server_words(error) == ("Forbidden", "no rights")


def test_cache_counts_refusals_in_a_row_and_forgets_them():
    cache, key = Cache(), ("team-a", "demo")
    cache.refused(key, "Job", "demo", "Forbidden", "quota", "2026-11-25T12:00:00Z")
    cache.refused(key, "Job", "demo", "Forbidden", "quota", "2026-11-25T12:00:02Z")
    assert cache.refusals[key][("Job", "demo")].attempts == 2
    cache.created(key, "Job", "demo")
    assert key not in cache.refusals
    cache.refused(key, "Job", "demo", "Forbidden", "quota", "2026-11-25T12:00:02Z")
    cache.put_training_job({"metadata": {"namespace": "team-a", "name": "demo"}}, deleted=True)
    assert key not in cache.refusals  # a new TrainingJob of the same name starts clean


# invalid edits: the deadline, the TTL and a finished phase hold

TPU_TYPO = {"framework": "tensorflow", "strategy": "tpu", "workers": None,
            "tpu": {"accelerator": "tpu-v5-lite-podslice", "topology": "2x2x2"}}


def test_invalid_edit_to_a_running_job_does_not_stop_its_deadline():
    running = {"phase": "Running", "restarts": 0, "startTime": "2026-11-25T12:00:00Z"}
    obj = training_job(status=running, runPolicy={"activeDeadlineSeconds": 60}, **TPU_TYPO)
    observed = Observed(True, JobState(0), pods(0, "Running", "Running"))
    obj1, actions = step(obj, observed, NOW + timedelta(seconds=30))
    assert obj1["status"]["phase"] == "Invalid" and not actions.delete_job
    assert actions.requeue_after == 30.0  # comes back when the deadline passes
    obj2, actions = step(obj1, observed, NOW + timedelta(seconds=60))
    assert obj2["status"]["phase"] == "Failed" and actions.delete_job is not None
    assert condition(obj2, "Failed")["reason"] == "DeadlineExceeded"


def test_invalid_edit_never_overwrites_a_finished_phase_and_the_ttl_still_runs():
    done = {"phase": "Succeeded", "restarts": 0, "startTime": "2026-11-25T11:00:00Z",
            "completionTime": "2026-11-25T12:00:00Z",
            "conditions": [{"type": "Succeeded", "status": "True", "reason": "Completed", "message": "all 2 workers succeeded",
                            "lastTransitionTime": "2026-11-25T12:00:00Z"}]}
    obj = training_job(status=done, runPolicy={"ttlSecondsAfterFinished": 30}, **TPU_TYPO)
    obj1, actions = step(obj, Observed(True, JobState(0, complete=True), []), NOW + timedelta(seconds=10))
    assert obj1["status"]["phase"] == "Succeeded" and condition(obj1, "Succeeded")["status"] == "True"
    assert condition(obj1, "Invalid")["status"] == "True"
    assert 19 <= actions.requeue_after <= 20 and not actions.delete_training_job
    _, actions = step(obj1, Observed(True, JobState(0, complete=True), []), NOW + timedelta(seconds=31))
    assert actions.delete_training_job is not None


def test_invalid_from_the_start_has_no_clock_to_keep():
    obj, actions = step(training_job(runPolicy={"activeDeadlineSeconds": 1}, **TPU_TYPO), Observed())
    assert obj["status"]["phase"] == "Invalid" and actions.requeue_after is None and not actions.delete_job


# names that cannot collide

def test_x_and_x_tensorboard_no_longer_share_a_service():
    children = {o["metadata"]["name"] for o in reconcile(training_job(tensorboard={"enabled": True, "claimName": "tb"}),
                                                          Observed(), NOW).create if o["kind"] == "Service"}
    assert "demo-tensorboard" not in children and tensorboard_name("demo") in children


@given(names, names)
def test_tensorboard_names_are_never_a_job_name_nor_another_jobs(a, b):
    import re

    for job in (a, b):
        board = tensorboard_name(job)
        assert len(board) == MAX_LABEL > MAX_JOB_NAME and re.match(DNS1035_LABEL_PATTERN, board)
    assert (tensorboard_name(a) == tensorboard_name(b)) == (a == b)


def test_the_longest_job_name_still_gets_a_digest():
    job = "a" * MAX_JOB_NAME
    assert tensorboard_name(job).startswith(f"{job}-tb-") and len(tensorboard_name(job)) == MAX_LABEL
    assert tensorboard_name("x") != tensorboard_name("x-tb")
