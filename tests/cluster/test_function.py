"""`Client().train(func)` on the real control plane and operator (kwok plays the pods): the
TrainingJob runs the function module, the ConfigMap the SDK created holds the function and is
owned by the job, the job reaches Succeeded, and deleting the job takes the ConfigMap with it."""

from __future__ import annotations

import json

import pytest
from kubernetes import client as k8s

from tandem import Client
from tandem.contract import FUNCTION_FILE, FUNCTION_MODULE, FUNCTION_MOUNT_PATH
from tandem.errors import JobFailed
from tests.support.kwok import pod_annotations
from tests.support.waiting import wait_for


def train(lr: float, epochs: int) -> None:
    import time

    for _ in range(epochs):
        time.sleep(lr)


def test_a_function_runs_as_a_trainingjob_with_the_configmap_it_owns(control_plane, operator, namespace):
    client = Client(kubeconfig=control_plane.kubeconfig, namespace=namespace)
    job = client.train(train, kwargs={"lr": 0.1, "epochs": 2}, workers=2, framework="tensorflow",
                       image="tandem/tensorflow-worker:0.1.0", resources={"cpu": "1"},
                       spec={"podTemplate": {"annotations": pod_annotations(run_seconds=2)}})
    assert job.name.startswith("train-")
    created = client.get(job.name)
    assert list(created.spec.command) == ["python", "-m", FUNCTION_MODULE, f"{FUNCTION_MOUNT_PATH}/{FUNCTION_FILE}"]
    assert created.metadata.annotations["tandem.dev/function"] == "train"

    config_map = client.core.read_namespaced_config_map(f"{job.name}-function", namespace)
    owner = config_map.metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.uid) == ("TrainingJob", job.name, created.metadata.uid)
    shipped = json.loads(config_map.data[FUNCTION_FILE])
    assert shipped["name"] == "train" and shipped["kwargs"] == {"lr": 0.1, "epochs": 2}
    assert shipped["source"].startswith("def train(lr: float, epochs: int) -> None:")

    status = job.wait(timeout=120)
    assert status.phase == "Succeeded"
    pods = client.worker_pods(job.name)
    assert len(pods) == 2
    for pod in pods:
        container = pod.spec.containers[0]
        assert container.args == ["python", "-m", FUNCTION_MODULE, f"{FUNCTION_MOUNT_PATH}/{FUNCTION_FILE}"]
        mount = next(m for m in container.volume_mounts if m.mount_path == FUNCTION_MOUNT_PATH)
        volume = next(v for v in pod.spec.volumes if v.name == mount.name)
        assert volume.config_map.name == f"{job.name}-function" and mount.read_only

    client.delete(job.name, wait=True)

    def config_map_gone() -> bool:
        try:
            client.core.read_namespaced_config_map(f"{job.name}-function", namespace)
        except k8s.ApiException as error:
            return error.status == 404
        return False

    wait_for("the ConfigMap deleted with its TrainingJob", config_map_gone, 60)


def test_a_failing_function_job_raises_jobfailed_naming_the_worker(control_plane, operator, namespace):
    client = Client(kubeconfig=control_plane.kubeconfig, namespace=namespace)
    job = client.train(train, kwargs={"lr": 0.1, "epochs": 1}, workers=2, name="fails",
                       spec={"runPolicy": {"backoffLimit": 0},
                             "podTemplate": {"annotations": pod_annotations(run_seconds=1, exit_code=5)}})
    with pytest.raises(JobFailed, match=r"worker \d.*exit code 5|exit code 5.*worker \d") as failed:
        job.wait(timeout=90)
    assert failed.value.job.metadata.name == "fails"
