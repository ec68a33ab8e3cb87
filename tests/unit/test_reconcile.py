"""The pure reconcile decision, walked through a job's whole life without a cluster."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from hypothesis import given, settings, strategies as st

from tandem.api import TrainingJob
from tandem.contract import metrics_token_secret, tensorboard_name
from tandem.controller.actions import MetricsChannel
from tandem.controller.observed import JobState, Observed, PodState, observe, pod_state
from tandem.controller.policy.metrics import with_metrics
from tandem.controller.reconcile import ORDER, reconcile
from tandem.figures.token import job_token, secret_tag, token_uid
from tandem.render import render_one
from tests.conftest import REPO
from tests.support.specs import spec

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=timezone.utc)


def training_job(status=None, **changes):
    document = spec(**changes)
    document["metadata"].update(uid="u-1", generation=1)
    if status is not None:
        document["status"] = status
    return document


#: The spec of the demo job's NetworkPolicy: what the API server has once it was applied.
POLICY = render_one(TrainingJob.from_dict(spec()), "NetworkPolicy")["spec"]


def pods(restart, *phases, exit_code=None):
    return [PodState(name=f"demo-{i}-x", index=i, restart=restart, phase=phase,
                     exit_code=exit_code if phase == "Failed" else None, reason="Error" if phase == "Failed" else "")
            for i, phase in enumerate(phases)]


def step(obj, observed, now=NOW):
    actions = reconcile(obj, observed, now)
    if actions.status:
        obj = {**obj, "status": actions.status}
    return obj, actions


def test_new_job_creates_service_and_indexed_job_with_owner():
    obj, actions = step(training_job(), Observed())
    assert [o["kind"] for o in actions.create] == ["Service", "NetworkPolicy", "Job"]
    assert all(o["metadata"]["ownerReferences"][0]["uid"] == "u-1" for o in actions.create)
    assert obj["status"]["phase"] == "Pending"
    assert [e.reason for e in actions.events] == ["Created"]


def test_reconcile_twice_creates_nothing_twice():
    obj, _ = step(training_job(), Observed())
    observed = Observed(service=True, job=JobState(restart=0), pods=pods(0, "Pending", "Pending"), network_policy=POLICY)
    _again, actions = step(obj, observed)
    assert actions.create == [] and actions.events == []


def test_phases_in_order_to_succeeded():
    obj, _ = step(training_job(), Observed())
    obj, _ = step(obj, Observed(True, JobState(0), pods(0, "Running", "Running")))
    assert obj["status"]["phase"] == "Running" and obj["status"]["workers"]["active"] == 2
    obj, _actions = step(obj, Observed(True, JobState(0, complete=True), pods(0, "Succeeded", "Succeeded")))
    assert obj["status"]["phase"] == "Succeeded" and obj["status"]["completionTime"]
    conditions = {c["type"]: c["status"] for c in obj["status"]["conditions"]}
    assert conditions == {"Pending": "False", "Running": "False", "Succeeded": "True"}


def test_worker_failure_restarts_the_group_then_fails_naming_the_worker():
    obj, _ = step(training_job(runPolicy={"backoffLimit": 1}), Observed())
    failing = Observed(True, JobState(0, failed=True), pods(0, "Running", "Failed", exit_code=3), network_policy=POLICY)
    obj, actions = step(obj, failing)
    assert actions.delete_job and obj["status"]["restarts"] == 1 and obj["status"]["phase"] == "Restarting"
    # old group still being deleted: wait, don't create
    obj, actions = step(obj, Observed(True, JobState(0, failed=True, deleting=True), pods(0, "Failed", "Failed"),
                                      network_policy=POLICY))
    assert actions.create == [] and not actions.delete_job
    # old group gone: the new one is created with restart 1
    obj, actions = step(obj, Observed(True, None, [], network_policy=POLICY))
    (job_object,) = actions.create
    assert job_object["metadata"]["annotations"]["tandem.dev/restart"] == "1"
    obj, actions = step(obj, Observed(True, JobState(1, failed=True), pods(1, "Failed", "Running", exit_code=7)))
    assert obj["status"]["phase"] == "Failed"
    failed = next(c for c in obj["status"]["conditions"] if c["type"] == "Failed")
    assert "worker 0" in failed["message"] and "exit code 7" in failed["message"]
    assert failed["reason"] == "BackoffLimitExceeded"


def test_stale_group_is_deleted_after_a_crash_between_status_and_delete():
    obj = training_job(status={"phase": "Restarting", "restarts": 1})
    _, actions = step(obj, Observed(True, JobState(0, failed=True), pods(0, "Failed", "Running"), network_policy=POLICY))
    assert actions.delete_job and actions.create == []


def test_suspend_and_resume():
    obj, _ = step(training_job(), Observed())
    suspended = {**obj, "spec": {**obj["spec"], "runPolicy": {"suspend": True}}}
    obj2, actions = step(suspended, Observed(True, JobState(0), pods(0, "Running", "Running")))
    assert actions.delete_job and obj2["status"]["phase"] == "Suspended"
    resumed = {**obj2, "spec": {**obj2["spec"], "runPolicy": {"suspend": False}}}
    obj3, actions = step(resumed, Observed(True, None, [], network_policy=POLICY))
    assert [o["kind"] for o in actions.create] == ["Job"] and obj3["status"]["phase"] == "Pending"


def test_deadline_fails_the_job():
    obj, _ = step(training_job(runPolicy={"activeDeadlineSeconds": 60}), Observed())
    later = NOW + timedelta(seconds=61)
    obj, actions = step(obj, Observed(True, JobState(0), pods(0, "Running", "Running")), later)
    assert obj["status"]["phase"] == "Failed" and actions.delete_job
    assert any(c["reason"] == "DeadlineExceeded" for c in obj["status"]["conditions"])


def test_ttl_deletes_the_training_job():
    status = {"phase": "Succeeded", "restarts": 0, "completionTime": "2026-11-25T12:00:00Z"}
    obj = training_job(status=status, runPolicy={"ttlSecondsAfterFinished": 30})
    _, actions = step(obj, Observed(True, JobState(0, complete=True), []), NOW + timedelta(seconds=10))
    assert not actions.delete_training_job and 19 <= actions.requeue_after <= 20
    _, actions = step(obj, Observed(True, JobState(0, complete=True), []), NOW + timedelta(seconds=31))
    assert actions.delete_training_job


def test_invalid_spec_is_marked_invalid_naming_the_field():
    obj = training_job(framework="tensorflow", strategy="tpu", workers=None,
                       tpu={"accelerator": "tpu-v5-lite-podslice", "topology": "2x2x2"})
    obj, actions = step(obj, Observed())
    assert obj["status"]["phase"] == "Invalid" and actions.create == []
    invalid = next(c for c in obj["status"]["conditions"] if c["type"] == "Invalid")
    assert invalid["message"].startswith("spec.tpu: ")


def test_metrics_due_only_while_running_and_at_a_bounded_rate():
    obj, _ = step(training_job(), Observed())
    running = Observed(True, JobState(0), pods(0, "Running", "Running"))
    obj, actions = step(obj, running)
    assert actions.read_metrics
    obj = {**obj, "status": with_metrics(obj["status"], {"throughput": 100.0}, NOW, 1)}
    _, actions = step(obj, running, NOW + timedelta(seconds=5))
    assert not actions.read_metrics
    _, actions = step(obj, running, NOW + timedelta(seconds=16))
    assert actions.read_metrics


def test_the_pass_that_finds_the_job_complete_reads_the_figures_once_more():
    """The workers' last records (their shippers' final flush) are in only once every worker has
    exited: status must be read then, not left with a read 0 to 15 s older (an e2e run once
    showed the older figures)."""
    obj, _ = step(training_job(), Observed())
    running = Observed(True, JobState(0), pods(0, "Running", "Running"))
    obj, _ = step(obj, running)
    obj = {**obj, "status": with_metrics(obj["status"], {"throughput": 100.0}, NOW, 1)}
    done = Observed(True, JobState(0, complete=True), pods(0, "Succeeded", "Succeeded"))
    obj, actions = step(obj, done, NOW + timedelta(seconds=1))  # well within the refresh interval
    assert obj["status"]["phase"] == "Succeeded"
    assert actions.read_metrics and actions.read_metrics.status["phase"] == "Succeeded"
    assert actions.read_metrics.uid == "u-1" and actions.requeue_after is None
    _, actions = step(obj, done, NOW + timedelta(seconds=60))
    assert not actions.read_metrics  # finished: no reads after that one


KEY = b"k" * 32


def test_with_a_gateway_key_the_job_gets_its_token_secret_and_reads_it():
    channel = MetricsChannel("http://gateway:8070", KEY)
    actions = reconcile(training_job(), Observed(), NOW, channel)
    (secret,) = actions.secrets
    name = secret["metadata"]["name"]
    assert secret["kind"] == "Secret" and name == metrics_token_secret("demo", secret_tag(KEY, "team-a", "demo", "u-1"))
    assert secret["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert token_uid(KEY, secret["metadata"]["namespace"], "demo", secret["stringData"]["token"]) == "u-1"
    job = next(o for o in actions.create if o["kind"] == "Job")
    env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["TANDEM_METRICS_ADDRESS"]["value"] == "http://gateway:8070"
    assert env["TANDEM_METRICS_TOKEN"] == {"name": "TANDEM_METRICS_TOKEN", "valueFrom": {
        "secretKeyRef": {"name": name, "key": "token"}}}
    # Metrics off, or no key: no Secret, no token in the pods.
    for obj, metrics in ((training_job(metrics={"enabled": False}), channel),
                         (training_job(), MetricsChannel("http://gateway:8070"))):
        actions = reconcile(obj, Observed(), NOW, metrics)
        job = next(o for o in actions.create if o["kind"] == "Job")
        assert not actions.secrets
        assert "TANDEM_METRICS_TOKEN" not in {e["name"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_the_token_secrets_name_cannot_be_known_without_the_gateway_key():
    """The operator cannot read Secrets and takes "already exists" as its own: a tenant who could
    compute the name from the TrainingJob (its name and uid) would create the Secret first, with a
    token of its choosing, and the job's pods would read it. The name carries a MAC under the key."""
    job = training_job()
    names = {reconcile(job, Observed(), NOW, MetricsChannel("http://gateway:8070", key)).secrets[0]["metadata"]["name"]
             for key in (KEY, b"x" * 32)}
    assert len(names) == 2  # the key decides the name, not the job alone
    for name in names:
        tag = name.removeprefix("demo-metrics-token-")
        assert "u-1" not in name and len(tag) == 32 and int(tag, 16) >= 0  # 128 bits, no uid
        assert tag not in job_token(KEY, "team-a", "demo", "u-1")  # and not a piece of the job's token


def test_metrics_unavailable_sets_a_condition():
    status = with_metrics({"phase": "Running"}, None, NOW, 1, "no Ray")
    condition = next(c for c in status["conditions"] if c["type"] == "MetricsAvailable")
    assert condition["status"] == "False" and "no Ray" in condition["message"]
    assert status["metrics"]["available"] is False


def test_pod_state_reads_index_exit_code_and_restart():
    pod = {
        "metadata": {"name": "demo-1-abc", "labels": {"batch.kubernetes.io/job-completion-index": "1"},
                     "annotations": {"tandem.dev/restart": "2"}},
        "status": {"phase": "Failed", "containerStatuses": [
            {"state": {"terminated": {"exitCode": 3, "reason": "Error"}}}]},
    }
    state = pod_state(pod)
    assert (state.index, state.restart, state.exit_code, state.reason) == (1, 2, 3, "Error")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["Pending", "Running", "Succeeded", "Failed"]), min_size=2, max_size=2),
       st.booleans(), st.booleans(), st.integers(0, 3), st.integers(0, 3))
def test_never_more_than_one_job_applied_and_restarts_bounded(phases, complete, failed, restarts, limit):
    obj = training_job(status={"phase": "Running", "restarts": min(restarts, limit)}, runPolicy={"backoffLimit": limit})
    observed = Observed(True, JobState(min(restarts, limit), complete=complete, failed=failed),
                        pods(min(restarts, limit), *phases, exit_code=1), network_policy=POLICY)
    _, actions = step(obj, observed)
    assert sum(1 for o in actions.create if o["kind"] == "Job") == 0  # the Job exists: never applied again
    new_restarts = (actions.status or obj["status"])["restarts"]
    assert new_restarts <= limit
    assert not (actions.delete_job and actions.create)


def test_tensorboard_applied_with_the_service_and_its_address_in_status():
    obj, actions = step(training_job(tensorboard={"enabled": True, "claimName": "tb"}), Observed())
    assert [o["kind"] for o in actions.create] == ["Service", "Deployment", "Service", "NetworkPolicy", "NetworkPolicy", "Job"]
    assert obj["status"]["tensorboard"] == f"http://{tensorboard_name('demo')}.team-a.svc:6006"


def test_tensorboard_without_shared_storage_says_why():
    obj, _actions = step(training_job(tensorboard={"enabled": True}), Observed())
    served = next(c for c in obj["status"]["conditions"] if c["type"] == "TensorBoardServed")
    assert served["status"] == "False" and "claimName" in served["message"]


def test_tensorboard_pods_are_not_workers():
    board = {"metadata": {"name": "demo-tensorboard-abc", "labels": {"tandem.dev/job-name": "demo"}},
             "status": {"phase": "Running"}}
    assert observe("u-1", None, None, [board]).pods == []


def test_job_failure_reads_the_pods_from_the_api_before_judging_it():
    """The failed pod is read directly when the cache lacks it, however long ago the Job
    failed (a new leader finds it failed long before), and only a direct read that finds no
    failed pod after the brief wait lets the job fail unnamed."""
    obj, _ = step(training_job(runPolicy={"backoffLimit": 0}), Observed())
    job_failed = JobState(0, failed=True, failed_since="2026-11-25T12:00:00Z", uid="job-uid")
    _, actions = step(obj, Observed(True, job_failed, pods(0, "Running", "Running")), NOW + timedelta(seconds=2))
    assert actions.status == {} or actions.status.get("phase") != "Failed"
    assert actions.requeue_after == 1.0 and not actions.delete_job
    assert actions.read_pods is not None and actions.read_pods.job_uid == "job-uid"
    # a minute later (a failover): still no decision without a direct read
    _, actions = step(obj, Observed(True, job_failed, []), NOW + timedelta(seconds=60))
    assert actions.read_pods is not None and actions.status.get("phase") != "Failed"
    # the direct read finds the failed pod the cache lacked: it is named
    listed = [PodState("demo-0-x", 0, 0, "Failed", exit_code=3, reason="Error")]
    obj2, _ = step(obj, Observed(True, job_failed, [], listed_pods=listed), NOW + timedelta(seconds=60))
    assert obj2["status"]["phase"] == "Failed" and "worker 0 (pod demo-0-x) failed with exit code 3" in \
        next(c["message"] for c in obj2["status"]["conditions"] if c["type"] == "Failed")
    assert obj2["status"]["lastFailure"]["exitCode"] == 3
    # the direct read finds none, after the wait: decide anyway, with the Job's own reason
    obj3, _ = step(obj, Observed(True, job_failed, [], listed_pods=[]), NOW + timedelta(seconds=11))
    assert obj3["status"]["phase"] == "Failed"


def test_network_policy_before_the_job_and_put_back_when_deleted_or_edited():
    """Worker ports reachable from the job's own workers only. The policy is created
    before the Job (no worker starts unguarded), re-created when deleted, and its spec put back
    when edited."""
    _, actions = step(training_job(), Observed())
    kinds = [o["kind"] for o in actions.create]
    assert kinds.index("NetworkPolicy") < kinds.index("Job")
    obj, _ = step(training_job(), Observed())
    running = pods(0, "Running", "Running")
    _, actions = step(obj, Observed(True, JobState(0), running, network_policy=POLICY))
    assert actions.create == [] and actions.restore == []
    _, actions = step(obj, Observed(True, JobState(0), running, network_policy=None))  # deleted
    assert [o["kind"] for o in actions.create] == ["NetworkPolicy"]
    opened = {**POLICY, "ingress": [{}]}  # edited to admit every source
    _, actions = step(obj, Observed(True, JobState(0), running, network_policy=opened))
    assert [o["spec"] for o in actions.restore] == [POLICY] and actions.create == []


def test_observe_reads_the_network_policy_spec_only_when_the_job_owns_it():
    policy = {"metadata": {"name": "demo", "ownerReferences": [
        {"kind": "TrainingJob", "name": "demo", "uid": "u-1", "controller": True}]}, "spec": POLICY}
    assert observe("u-1", None, None, [], network_policy=policy).network_policy == POLICY
    foreign = observe("u-2", None, None, [], network_policy=policy)
    assert foreign.network_policy is None and [r.kind for r in foreign.refusals] == ["NetworkPolicy"]
    assert observe("u-1", None, None, []).network_policy is None


def test_docs_list_the_reconcile_steps_in_the_order_they_run():
    """docs/architecture.md's table of steps is reconcile.ORDER, row by row, each naming its module."""
    text = (REPO / "docs" / "architecture.md").read_text()
    section = text.split("## Reconcile steps\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| `(\w+)` \|", section, re.MULTILINE)
    assert tuple(name for name, _ in rows) == ORDER
    policy = REPO / "operator" / "tandem" / "controller" / "policy"
    assert [module for _, module in rows if not (policy / f"{module}.py").is_file()] == []
