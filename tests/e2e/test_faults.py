"""Faults only a real kubelet produces, surfaced in the TrainingJob's status with the worker named.

The operator runs as a process (`tandem operator run`, from this checkout) against the real
cluster; each TrainingJob's worker pods land on the real node (nodeSelector and toleration in
spec.podTemplate), where containerd and runc produce the fault:

- an image that does not exist: the pull fails (nothing is reachable from the node), the job is
  Pending with reason ImagePullBackOff naming the worker at once, then Failed ImagePullFailed
  when the grace ends (the tier's 15 s, `--image-pull-grace-seconds`, not the default 90 s),
  with no restart spent and the Job deleted;
- a container killed for memory: exit 137, OOMKilled, through the normal restart path;
- a command the image lacks (an image without python, which the launcher needs): the runtime
  cannot start the container; Failed CommandNotFound, no restart spent.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tandem.contract import (
    REASON_COMMAND_NOT_FOUND,
    REASON_IMAGE_PULL_BACK_OFF,
    REASON_IMAGE_PULL_FAILED,
)
from tests.cluster.operator_fixture import Operator, get
from tests.e2e.chart import IMAGE_PULL_GRACE_SECONDS
from tests.support.controlplane import install_crd
from tests.support.waiting import wait_for

OPERATOR_IMAGE = "docker.io/tandem/operator:0.1.0"
#: The probe image: a static Go binary and nothing else, so no python for the launcher.
NO_PYTHON_IMAGE = "tandem.dev/probe:1"
ON_THE_REAL_NODE = {
    "nodeSelector": {"tandem.dev/node": "real"},
    "tolerations": [{"key": "tandem.dev/real-node", "operator": "Exists", "effect": "NoSchedule"}],
}


@pytest.fixture(scope="module")
def fault_operator(real_cluster, node_images, tmp_path_factory):
    """The operator image on the node (the OOM job runs python from it) and an operator, whose
    grace for a failing pull is the tier's short one."""
    cp, _ = real_cluster
    node_images.wait("operator")
    install_crd(cp)
    operator = Operator(cp.kubeconfig, tmp_path_factory.mktemp("faults") / "operator.log", "kube-system",
                        "--image-pull-grace-seconds", str(IMAGE_PULL_GRACE_SECONDS)).start()
    yield operator
    operator.stop()


def training_job(name: str, namespace: str, image: str, command: list[str], memory: str = "256Mi",
                 backoff_limit: int = 3, workers: int = 2) -> dict[str, Any]:
    return {
        "apiVersion": "tandem.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            # The launcher runs a TensorFlow job's command as it is: no torchrun, no TensorFlow import.
            "framework": "tensorflow",
            "strategy": "multi-worker-mirrored",
            "image": image,
            "command": command,
            "workers": workers,
            "resources": {"cpu": "100m", "memory": memory},
            "metrics": {"enabled": False},
            "runPolicy": {"backoffLimit": backoff_limit},
            "podTemplate": ON_THE_REAL_NODE,
        },
    }


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c["type"] == type_ and c["status"] == "True"), {})


def wait_for_condition(cp, namespace: str, name: str, type_: str, timeout: float, operator: Operator) -> dict[str, Any]:
    def check() -> Any:
        job = get(cp, namespace, "trainingjob", name) or {}
        return condition(job.get("status") or {}, type_) and job["status"]
    try:
        return wait_for(f"{name} {type_}", check, timeout=timeout, interval=1)
    except AssertionError:
        print(operator.log()[-4000:])
        raise


def apply(cp, document: dict[str, Any]) -> None:
    cp.kubectl("apply", "-f", "-", input=json.dumps(document))


def show(status: dict[str, Any]) -> None:
    """The status as `kubectl get tj -o yaml` would show it, for the test's log (-s)."""
    print(json.dumps({k: status[k] for k in ("phase", "restarts", "conditions") if k in status}, indent=1))


def test_an_image_that_does_not_exist_fails_the_job_naming_the_worker(real_cluster, e2e_namespace, fault_operator):
    cp, _ = real_cluster
    apply(cp, training_job("no-image", e2e_namespace, "tandem/nope:1", ["python", "-c", "pass"]))

    pending = wait_for_condition(cp, e2e_namespace, "no-image", "Pending", 90, fault_operator)
    wait_for("the Pending condition naming the pull", lambda: condition(
        (get(cp, e2e_namespace, "trainingjob", "no-image") or {}).get("status") or {}, "Pending"
    ).get("reason") == REASON_IMAGE_PULL_BACK_OFF, timeout=90, interval=1)
    failed = wait_for_condition(cp, e2e_namespace, "no-image", "Failed", IMAGE_PULL_GRACE_SECONDS + 90, fault_operator)
    show(failed)
    reason, message = condition(failed, "Failed")["reason"], condition(failed, "Failed")["message"]
    assert reason == REASON_IMAGE_PULL_FAILED
    assert f"(still failing after {IMAGE_PULL_GRACE_SECONDS}s of retries)" in message  # the operator's setting
    assert "worker 0 (pod no-image-0-" in message and "image tandem/nope:1 cannot be pulled" in message
    assert "ErrImagePull" in message or "ImagePullBackOff" in message
    assert failed["restarts"] == 0 and failed["phase"] == "Failed"
    assert pending  # it was Pending (with the reason) before it failed
    wait_for("the Job deleted", lambda: get(cp, e2e_namespace, "job", "no-image") is None, timeout=60)


def test_a_worker_killed_for_memory_restarts_the_group_then_fails_naming_it(real_cluster, e2e_namespace, fault_operator):
    cp, _ = real_cluster
    allocate = ["python", "-c", "data = b'x' * (512 * 1024 * 1024); print(len(data))"]
    apply(cp, training_job("oom", e2e_namespace, OPERATOR_IMAGE, allocate, memory="64Mi", backoff_limit=1, workers=1))

    failed = wait_for_condition(cp, e2e_namespace, "oom", "Failed", 240, fault_operator)
    show(failed)
    restarting = next(c for c in failed["conditions"] if c["type"] == "Restarting")
    for text in (restarting["message"], condition(failed, "Failed")["message"]):
        assert "worker 0 (pod oom-0-" in text and "exit code 137 (OOMKilled)" in text
        assert "memory limit" in text
    assert "restarting all workers (1/1)" in restarting["message"]
    assert condition(failed, "Failed")["reason"] == "BackoffLimitExceeded" and failed["restarts"] == 1


def test_a_command_the_image_lacks_fails_the_job_without_restarts(real_cluster, e2e_namespace, fault_operator):
    cp, _ = real_cluster
    apply(cp, training_job("no-command", e2e_namespace, NO_PYTHON_IMAGE, ["python", "train.py"]))

    failed = wait_for_condition(cp, e2e_namespace, "no-command", "Failed", 120, fault_operator)
    show(failed)
    reason, message = condition(failed, "Failed")["reason"], condition(failed, "Failed")["message"]
    assert reason == REASON_COMMAND_NOT_FOUND
    assert "(pod no-command-" in message and f"cannot start in image {NO_PYTHON_IMAGE}" in message
    assert '"python": executable file not found' in message
    assert failed["restarts"] == 0
