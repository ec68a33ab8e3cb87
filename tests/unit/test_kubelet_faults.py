"""Faults only a kubelet produces, from the pods it writes to what the TrainingJob's status says.

The pod dicts in tests/unit/kubelet_pods.py are real: copied from the e2e tier's node (kubelet
v1.33, containerd 1.6, runc 1.1). tests/e2e/test_faults.py runs the same faults end to end.
"""

from __future__ import annotations

from datetime import timedelta

from tandem.api.status import parse_time
from tandem.contract import (
    REASON_COMMAND_NOT_FOUND,
    REASON_IMAGE_PULL_BACK_OFF,
    REASON_IMAGE_PULL_FAILED,
)
from tandem.controller.observed import JobState, Observed, PodState, pod_state
from tandem.controller.policy.unstartable import start_fault
from tandem.controller.reconcile import reconcile
from tandem.controller.timing import IMAGE_PULL_GRACE_SECONDS

from . import kubelet_pods
from .test_reconcile import NOW, step, training_job


def as_worker(pod: dict, index: int = 1, restart: int = 0) -> PodState:
    """A real pod as worker `index` of group `restart` (the labels the Indexed Job sets)."""
    meta = pod["metadata"]
    meta = {**meta, "labels": {**(meta.get("labels") or {}), "batch.kubernetes.io/job-completion-index": str(index)},
            "annotations": {**(meta.get("annotations") or {}), "tandem.dev/restart": str(restart)}}
    return pod_state({**pod, "metadata": meta})


def started(pod: PodState):
    moment = parse_time(pod.started)
    assert moment is not None
    return moment


def running(index: int) -> PodState:
    return PodState(f"demo-{index}-x", index, 0, "Running", ready=True)


# what observed.pod_state reads from the kubelet's pods

def test_image_never_pulled_is_read_as_waiting_with_the_image():
    pod = as_worker(kubelet_pods.ERR_IMAGE_NEVER_PULL)
    assert (pod.phase, pod.waiting_reason, pod.image) == ("Pending", "ErrImageNeverPull", "tandem/nope:1")
    assert "tandem/nope:1" in pod.waiting_message and pod.started


def test_failed_pull_is_read_as_waiting():
    for raw in (kubelet_pods.ERR_IMAGE_PULL, kubelet_pods.IMAGE_PULL_BACK_OFF):
        pod = as_worker(raw)
        assert pod.phase == "Pending" and pod.waiting_reason in ("ErrImagePull", "ImagePullBackOff")
        assert pod.waiting_message and pod.image == "tandem/nope:1"


def test_oom_killed_is_read_as_terminated_137():
    pod = as_worker(kubelet_pods.OOM_KILLED)
    assert (pod.phase, pod.exit_code, pod.reason, pod.waiting_reason) == ("Failed", 137, "OOMKilled", "")


def test_command_not_found_is_read_with_the_runtime_message():
    pod = as_worker(kubelet_pods.COMMAND_NOT_FOUND)
    assert "executable file not found" in (pod.message + pod.waiting_message)


def test_a_container_being_created_is_no_fault():
    pod = as_worker(kubelet_pods.CONTAINER_CREATING)
    assert pod.waiting_reason == "" and start_fault(pod, NOW) is None


# the pure policy: which faults are final, and when

def test_image_never_pulled_and_invalid_names_are_final_at_once():
    for raw in (kubelet_pods.ERR_IMAGE_NEVER_PULL, kubelet_pods.INVALID_IMAGE_NAME):
        pod = as_worker(raw)
        fault = start_fault(pod, started(pod))
        assert fault is not None and fault.final and fault.reason == REASON_IMAGE_PULL_FAILED
        assert fault.message.startswith(f"worker 1 (pod {pod.name}): image {pod.image} cannot be pulled "
                                        f"({pod.waiting_reason}): ")


def test_a_failing_pull_gets_its_grace_then_is_final():
    pod = as_worker(kubelet_pods.IMAGE_PULL_BACK_OFF)
    grace = timedelta(seconds=IMAGE_PULL_GRACE_SECONDS)
    within = start_fault(pod, started(pod) + grace - timedelta(seconds=1))
    assert within is not None and not within.final and within.reason == REASON_IMAGE_PULL_BACK_OFF
    assert within.grace_ends == started(pod) + grace
    after = start_fault(pod, started(pod) + grace)
    assert after is not None and after.final and after.reason == REASON_IMAGE_PULL_FAILED
    assert f"still failing after {IMAGE_PULL_GRACE_SECONDS}s" in after.message


def test_command_not_found_is_final():
    pod = as_worker(kubelet_pods.COMMAND_NOT_FOUND)
    fault = start_fault(pod, NOW)
    assert fault is not None and fault.final and fault.reason == REASON_COMMAND_NOT_FOUND
    assert f"worker 1 (pod {pod.name}): the command cannot start in image {pod.image}" in fault.message
    assert "executable file not found" in fault.message


def test_an_ordinary_failure_or_oom_is_no_start_fault():
    assert start_fault(as_worker(kubelet_pods.OOM_KILLED), NOW) is None
    assert start_fault(PodState("demo-0-x", 0, 0, "Failed", exit_code=1, reason="Error"), NOW) is None
    # A start error that is not a missing command (e.g. a permission problem) is left to the
    # normal failure path, which restarts the group.
    other = PodState("demo-0-x", 0, 0, "Failed", exit_code=128, reason="StartError", message="permission denied")
    assert start_fault(other, NOW) is None


def test_long_runtime_messages_keep_their_end():
    pod = PodState("demo-0-x", 0, 0, "Failed", exit_code=128, reason="StartError",
                   message="runc create failed: " * 50 + 'exec: "python": executable file not found in $PATH: unknown')
    fault = start_fault(pod, NOW)
    assert fault is not None and fault.message.endswith("executable file not found in $PATH: unknown")
    assert "(StartError, exit code 128): ...runc create failed: " in fault.message  # cut before a word
    assert len(fault.message) < 550


def test_a_failed_pull_message_is_quoted_whole():
    pod = as_worker(kubelet_pods.IMAGE_PULL_BACK_OFF)
    fault = start_fault(pod, started(pod))
    assert fault is not None and fault.message.endswith(f"(ImagePullBackOff): {pod.waiting_message}")


# through reconcile: the status the user sees

def created(**changes):
    obj, _ = step(training_job(**changes), Observed())
    return obj


def test_missing_image_fails_the_job_at_once_without_a_restart():
    obj = created()
    pod = as_worker(kubelet_pods.ERR_IMAGE_NEVER_PULL)
    obj, actions = step(obj, Observed(True, JobState(0), [running(0), pod]), now=started(pod))
    status = obj["status"]
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert status["phase"] == "Failed" and status["restarts"] == 0 and status["completionTime"]
    assert failed["reason"] == REASON_IMAGE_PULL_FAILED
    assert failed["message"].startswith(f"worker 1 (pod {pod.name}): image tandem/nope:1 cannot be pulled "
                                        "(ErrImageNeverPull): ")
    assert actions.delete_job is not None  # worker 0 stops holding its node
    assert [e.type for e in actions.events] == ["Warning"]
    again, actions = step(obj, Observed(True, JobState(0, deleting=True), [running(0), pod]), now=started(pod))
    assert again["status"] == obj["status"] and actions.create == [] and actions.delete_job is None


def test_failing_pull_is_pending_with_the_reason_then_failed_after_the_grace():
    obj = created()
    pod = as_worker(kubelet_pods.IMAGE_PULL_BACK_OFF)
    observed = Observed(True, JobState(0), [running(0), pod])
    obj, actions = step(obj, observed, now=started(pod) + timedelta(seconds=5))
    pending = next(c for c in obj["status"]["conditions"] if c["type"] == "Pending")
    assert obj["status"]["phase"] == "Pending" and pending["reason"] == REASON_IMAGE_PULL_BACK_OFF
    assert f"worker 1 (pod {pod.name}): image tandem/nope:1 cannot be pulled" in pending["message"]
    assert actions.requeue_after == IMAGE_PULL_GRACE_SECONDS - 5 and actions.delete_job is None
    # the next pass within the grace writes nothing new
    _, actions = step(obj, observed, now=started(pod) + timedelta(seconds=20))
    assert actions.status == {}
    obj, actions = step(obj, observed, now=started(pod) + timedelta(seconds=IMAGE_PULL_GRACE_SECONDS))
    failed = next(c for c in obj["status"]["conditions"] if c["type"] == "Failed")
    assert obj["status"]["phase"] == "Failed" and failed["reason"] == REASON_IMAGE_PULL_FAILED
    assert obj["status"]["restarts"] == 0 and actions.delete_job is not None


def test_the_operator_setting_sets_the_grace():
    """`--image-pull-grace-seconds` reaches the policy through reconcile, and only the grace moves."""
    pod = as_worker(kubelet_pods.IMAGE_PULL_BACK_OFF)
    observed = Observed(True, JobState(0), [running(0), pod])
    obj = created()
    within = reconcile(obj, observed, started(pod) + timedelta(seconds=14), image_pull_grace_seconds=15)
    assert within.status["phase"] == "Pending" and within.requeue_after == 1 and within.delete_job is None
    after = reconcile(obj, observed, started(pod) + timedelta(seconds=15), image_pull_grace_seconds=15)
    failed = next(c for c in after.status["conditions"] if c["type"] == "Failed")
    assert after.status["phase"] == "Failed" and failed["reason"] == REASON_IMAGE_PULL_FAILED
    assert "(still failing after 15s of retries)" in failed["message"] and after.delete_job is not None
    longer = start_fault(pod, started(pod) + timedelta(seconds=IMAGE_PULL_GRACE_SECONDS), grace_seconds=300)
    assert longer is not None and not longer.final and longer.grace_ends == started(pod) + timedelta(seconds=300)


def test_command_not_found_fails_the_job_without_a_restart():
    obj = created(runPolicy={"backoffLimit": 3})
    pod = as_worker(kubelet_pods.COMMAND_NOT_FOUND, index=0)
    obj, _ = step(obj, Observed(True, JobState(0, failed=True), [pod, running(1)]))
    failed = next(c for c in obj["status"]["conditions"] if c["type"] == "Failed")
    assert obj["status"]["phase"] == "Failed" and obj["status"]["restarts"] == 0
    assert failed["reason"] == REASON_COMMAND_NOT_FOUND and "worker 0 (pod " in failed["message"]
    assert "executable file not found" in failed["message"]


def test_oom_killed_worker_restarts_the_group_then_fails_naming_it():
    obj = created(runPolicy={"backoffLimit": 1})
    oom = as_worker(kubelet_pods.OOM_KILLED, index=1)
    obj, actions = step(obj, Observed(True, JobState(0, failed=True), [running(0), oom]))
    restarting = next(c for c in obj["status"]["conditions"] if c["type"] == "Restarting")
    expected = f"worker 1 (pod {oom.name}) failed with exit code 137 (OOMKilled): the container went over its memory limit"
    assert obj["status"]["restarts"] == 1 and restarting["message"].startswith(expected)
    assert restarting["reason"] == "WorkerFailed" and actions.delete_job is not None
    obj, _ = step(obj, Observed(True, None, []))
    oom_again = as_worker(kubelet_pods.OOM_KILLED, index=1, restart=1)
    obj, _ = step(obj, Observed(True, JobState(1, failed=True), [oom_again]))
    failed = next(c for c in obj["status"]["conditions"] if c["type"] == "Failed")
    assert obj["status"]["phase"] == "Failed" and failed["reason"] == "BackoffLimitExceeded"
    assert failed["message"].startswith(expected)
