"""Rendering: valid Kubernetes objects, the env contract, and no way to inject anything."""

from __future__ import annotations

import json
import os
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from hypothesis import HealthCheck, given, settings

from tandem.api import TrainingJob, load_job
from tandem.cli.render import dump_yaml
from tandem.contract import (
    COMPLETION_INDEX,
    COMPONENT_LABEL,
    COMPONENT_WORKER,
    JOB_NAME_LABEL,
    MAX_JOB_NAME,
    MAX_WORKERS,
    TENSORBOARD_PORT,
    tensorboard_name,
)
from tandem.launch.env import build_launch
from tandem.render import render
from tandem.render.context import RESTRICTED_CONTAINER_SECURITY, RESTRICTED_POD_SECURITY
from tests.conftest import EXAMPLES, K8S_VERSION
from tests.support.specs import spec, valid_documents

GOLDEN = Path(__file__).parent / "golden"


def validate_objects(objects):
    assert [o["kind"] for o in objects] == ["Service", "Job", "NetworkPolicy"]
    for obj in objects:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_render_to_valid_objects(path):
    validate_objects(render(load_job(path)))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_golden(path):
    """Reviewed by eye once; TANDEM_UPDATE_GOLDEN=1 rewrites them after an intended change."""
    text = dump_yaml(render(load_job(path)))
    golden = GOLDEN / path.name
    if os.environ.get("TANDEM_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()


def _worker(job_document):
    service, job, _policy = render(TrainingJob.from_dict(job_document))
    return service, job, job["spec"]["template"]["spec"]["containers"][0]


def test_indexed_job_and_headless_service():
    service, job, container = _worker(spec(workers=3))
    assert service["spec"]["clusterIP"] == "None" and service["spec"]["publishNotReadyAddresses"]
    assert job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == 3
    assert job["spec"]["template"]["spec"]["subdomain"] == service["metadata"]["name"] == "demo"
    assert service["spec"]["selector"].items() <= job["spec"]["template"]["metadata"]["labels"].items()
    assert container["command"] == ["python", "-m", "tandem.launch", "--"]
    assert container["args"] == ["python", "train.py"]


def test_env_contract():
    _, _, container = _worker(spec(workers=2))
    env = {e["name"]: e for e in container["env"]}
    assert env["TANDEM_WORKERS"]["value"] == "2"
    assert env["TANDEM_COORDINATOR"]["value"] == "demo-0.demo.team-a.svc"
    assert "TANDEM_WORKER_HOSTS" not in env  # the launcher derives them (test below)
    assert env["TANDEM_WORKER_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"] == f"metadata.annotations['{COMPLETION_INDEX}']"
    for name in ("TANDEM_JOB", "TANDEM_NAMESPACE", "TANDEM_PORT", "TANDEM_METRICS_ADDRESS"):
        assert name in env


def _pod_env(container, index):
    return {e["name"]: e.get("value", str(index)) for e in container["env"]}


def test_the_launcher_derives_every_host_of_a_rendered_pod():
    """TF_CONFIG and TPU_WORKER_HOSTNAMES are what the host list in every pod used to give."""
    _, _, container = _worker(spec(framework="tensorflow", strategy="multi-worker-mirrored", workers=3))
    launch = build_launch(_pod_env(container, 2), container["args"], "python")
    hosts = [f"demo-{i}.demo.team-a.svc:29500" for i in range(3)]
    assert json.loads(launch.env["TF_CONFIG"]) == {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": 2}}
    _, _, container = _worker(spec(framework="tensorflow", strategy="tpu", workers=None,
                                   tpu={"accelerator": "tpu-v5-lite-podslice", "topology": "4x4"}))
    launch = build_launch(_pod_env(container, 1), container["args"], "python")
    assert launch.env["TPU_WORKER_HOSTNAMES"] == ",".join(f"demo-{i}.demo.team-a.svc" for i in range(4))
    assert launch.env["TPU_WORKER_ID"] == "1"


def test_job_size_does_not_grow_with_the_worker_count():
    """Every pod once listed every worker, so 10,000 workers with a long name made a 1.9 MB
    Job, past etcd's limit for one object. MAX_WORKERS is the largest count tested, here."""
    name = "n" * MAX_JOB_NAME
    def size(workers):
        document = spec(workers=workers)
        document["metadata"] = {**document["metadata"], "name": name}
        return len(json.dumps(render(TrainingJob.from_dict(document))[1]))
    small, large = size(2), size(MAX_WORKERS)
    assert large - small < 16, (small, large)  # the digits of the counts only
    assert large < 8 * 1024


def test_gpu_scheduling():
    _, job, container = _worker(spec(resources={"gpus": 4}, procsPerWorker=4))
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "4"
    gpu_toleration = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    assert gpu_toleration in job["spec"]["template"]["spec"]["tolerations"]


def test_tpu_scheduling():
    document = spec(framework="tensorflow", strategy="tpu", workers=None,
                    tpu={"accelerator": "tpu-v5-lite-podslice", "topology": "4x4"})
    _, job, container = _worker(document)
    pod = job["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {
        "cloud.google.com/gke-tpu-accelerator": "tpu-v5-lite-podslice",
        "cloud.google.com/gke-tpu-topology": "4x4",
    }
    assert container["resources"]["limits"]["google.com/tpu"] == "4"
    assert job["spec"]["completions"] == 4


def test_owner_reference_only_with_uid():
    service, job, _ = _worker(spec())
    assert "ownerReferences" not in job["metadata"] and "ownerReferences" not in service["metadata"]
    document = spec()
    document["metadata"]["uid"] = "1234"
    service, job, _ = _worker(document)
    for obj in (service, job):
        (ref,) = obj["metadata"]["ownerReferences"]
        assert ref["uid"] == "1234" and ref["kind"] == "TrainingJob" and ref["controller"] is True


def test_restricted_by_default_and_overridable():
    _, job, container = _worker(spec())
    assert job["spec"]["template"]["spec"]["securityContext"] == RESTRICTED_POD_SECURITY
    assert container["securityContext"] == RESTRICTED_CONTAINER_SECURITY
    _, job, _ = _worker(spec(podTemplate={"securityContext": {"runAsUser": 0}}))
    # A replacement's fields win; what it leaves out keeps the restricted default.
    assert job["spec"]["template"]["spec"]["securityContext"] == {"runAsUser": 0, "seccompProfile": {"type": "RuntimeDefault"}}
    _, _, container = _worker(spec(podTemplate={"containerSecurityContext": {"readOnlyRootFilesystem": True}}))
    assert container["securityContext"] == {"readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
                                            "capabilities": {"drop": ["ALL"]}}


def _key_paths(value, prefix=""):
    """Every key path in an object, with list indexes and user-keyed maps collapsed."""
    if isinstance(value, dict):
        paths = {prefix}
        for key, child in value.items():
            free = prefix.endswith(("labels", "annotations", "nodeSelector", "selector", "requests", "limits"))
            paths |= _key_paths(child, f"{prefix}.{'*' if free else key}")
        return paths
    if isinstance(value, list):
        return set().union({prefix}, *(_key_paths(v, f"{prefix}[]") for v in value))
    return {prefix}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_documents())
def test_no_spec_can_inject(document):
    """Whatever the strings, the output is two objects of a fixed shape holding them verbatim."""
    job = TrainingJob.from_dict(document)
    objects = render(job)
    validate_objects(objects)
    _service, job_object, _policy = objects
    pod = job_object["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["args"] == document["spec"]["command"]
    user_env = {e["name"]: e["value"] for e in container["env"] if not e["name"].startswith("TANDEM_")}
    expected = {e["name"]: e["value"] for e in document["spec"]["env"]}
    if "OMP_NUM_THREADS" not in expected:
        assert int(user_env.pop("OMP_NUM_THREADS")) >= 1  # Tandem's default: the worker's cores
    assert user_env == expected
    annotations = job_object["spec"]["template"]["metadata"]["annotations"]
    assert document["spec"]["podTemplate"]["annotations"].items() <= annotations.items()
    reference = render(TrainingJob.from_dict(spec(env=[{"name": "X", "value": "y"}], resources={"gpus": 1})))
    allowed = set().union(*(_key_paths(o) for o in reference)) | _key_paths(
        render(TrainingJob.from_dict(spec(framework="tensorflow", strategy="tpu", workers=None,
                                          tpu={"accelerator": "tpu-v6e-slice", "topology": "2x2"})))[1]
    )
    for obj in objects:
        extra = _key_paths(obj) - allowed - {".metadata.ownerReferences", ".metadata.ownerReferences[]"}
        extra = {p for p in extra if not p.startswith(".metadata.ownerReferences[].")}
        assert not extra, f"unexpected fields {extra}"


def test_yaml_output_round_trips():
    objects = render(load_job(EXAMPLES[0]))
    assert list(yaml.safe_load_all(dump_yaml(objects))) == objects


def test_tensorboard_deployment_reads_the_workers_claim():
    document = spec(tensorboard={"enabled": True, "claimName": "tb-logs"})
    objects = render(TrainingJob.from_dict(document))
    assert [o["kind"] for o in objects] == ["Service", "Job", "NetworkPolicy", "Deployment", "Service", "NetworkPolicy"]
    for obj in objects:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    job_pod, board_pod = objects[1]["spec"]["template"]["spec"], objects[3]["spec"]["template"]["spec"]
    worker_mount = next(m for m in job_pod["containers"][0]["volumeMounts"] if m["name"] == "tensorboard")
    board_mount = next(m for m in board_pod["containers"][0]["volumeMounts"] if m["name"] == "tensorboard")
    assert worker_mount["mountPath"] == board_mount["mountPath"] == "/tandem/tensorboard" and board_mount["readOnly"]
    env = {e["name"]: e.get("value") for e in job_pod["containers"][0]["env"]}
    assert env["TANDEM_TENSORBOARD_DIR"] == "/tandem/tensorboard/demo"
    assert board_pod["containers"][0]["args"][:2] == ["--logdir", "/tandem/tensorboard/demo"]
    # the workers' headless Service must not select the TensorBoard pod
    assert objects[0]["spec"]["selector"]["app.kubernetes.io/component"] == "worker"


def test_tensorboard_runs_where_the_workers_may_run():
    """A podTemplate's node selector and tolerations place the TensorBoard pod too (found on a
    tainted node: it stayed Pending); a GPU job's accelerator toleration does not."""
    toleration = {"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}
    document = spec(tensorboard={"enabled": True, "claimName": "tb-logs"}, resources={"cpu": "1", "memory": "1Gi", "gpus": 1},
                    podTemplate={"nodeSelector": {"pool": "training"}, "tolerations": [toleration]})
    objects = render(TrainingJob.from_dict(document))
    board_pod = objects[3]["spec"]["template"]["spec"]
    kubernetes_validate.validate(objects[3], K8S_VERSION, strict=True)
    assert board_pod["nodeSelector"] == {"pool": "training"}
    assert board_pod["tolerations"] == [toleration]
    plain = render(TrainingJob.from_dict(spec(tensorboard={"enabled": True, "claimName": "tb-logs"})))
    plain_pod = plain[3]["spec"]["template"]["spec"]
    assert "nodeSelector" not in plain_pod and "tolerations" not in plain_pod


def test_tensorboard_without_shared_storage_renders_no_server():
    objects = render(TrainingJob.from_dict(spec(tensorboard={"enabled": True})))
    assert [o["kind"] for o in objects] == ["Service", "Job", "NetworkPolicy"]


def test_omp_threads_default_to_the_worker_cores_per_process():
    _, _, container = _worker(spec(resources={"cpu": "8"}, procsPerWorker=2))
    assert {"name": "OMP_NUM_THREADS", "value": "4"} in container["env"]
    _, _, container = _worker(spec(resources={"cpu": "500m"}))
    assert {"name": "OMP_NUM_THREADS", "value": "1"} in container["env"]
    _, _, container = _worker(spec(env=[{"name": "OMP_NUM_THREADS", "value": "3"}]))
    assert [e["value"] for e in container["env"] if e["name"] == "OMP_NUM_THREADS"] == ["3"]


def _policies(document):
    objects = render(TrainingJob.from_dict(document))
    return objects, {o["metadata"]["name"]: o for o in objects if o["kind"] == "NetworkPolicy"}


def _matches(selector, labels):
    return selector["matchLabels"].items() <= labels.items()


def test_network_policy_admits_only_the_jobs_own_workers():
    """Worker ports (TCPStore, TF's gRPC server) listen on every address; the job's
    NetworkPolicy lets only its own worker pods in, from its own namespace, and is owned by it."""
    document = spec(workers=3, podTemplate={"labels": {"tandem.dev/job-name": "other", "team": "a"}})
    document["metadata"]["uid"] = "u-1"
    objects, policies = _policies(document)
    policy, job = policies["demo"], objects[1]
    kubernetes_validate.validate(policy, K8S_VERSION, strict=True)
    assert policy["metadata"]["namespace"] == "team-a"
    assert policy["metadata"]["ownerReferences"] == job["metadata"]["ownerReferences"]
    assert policy["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert policy["metadata"]["ownerReferences"][0]["controller"] is True
    worker_labels = job["spec"]["template"]["metadata"]["labels"]
    assert worker_labels["tandem.dev/job-name"] == "demo"  # a podTemplate label cannot pose as another job
    assert _matches(policy["spec"]["podSelector"], worker_labels)
    assert policy["spec"]["policyTypes"] == ["Ingress"]  # egress stays open: DNS, metrics, data
    (rule,) = policy["spec"]["ingress"]
    (source,) = rule["from"]
    assert set(source) == {"podSelector"}  # no namespaceSelector, no ipBlock: this namespace only
    assert "ports" not in rule  # gloo and NCCL connect the ranks on ephemeral ports
    assert _matches(source["podSelector"], worker_labels)
    # ...and nothing else: another job's workers, this job's TensorBoard, a pod with no labels
    other_job = render(TrainingJob.from_dict(spec() | {"metadata": {"name": "other", "namespace": "team-a"}}))[1]
    board_objects = render(TrainingJob.from_dict(spec(tensorboard={"enabled": True, "claimName": "tb"})))
    board_labels = next(o for o in board_objects if o["kind"] == "Deployment")["spec"]["template"]["metadata"]["labels"]
    for labels in (other_job["spec"]["template"]["metadata"]["labels"], board_labels, {}):
        assert not _matches(source["podSelector"], labels)
        assert not _matches(policy["spec"]["podSelector"], labels)


def test_network_policy_of_the_tensorboard_opens_its_port_to_the_namespace_only():
    objects, policies = _policies(spec(tensorboard={"enabled": True, "claimName": "tb"}))
    board = policies[tensorboard_name("demo")]
    kubernetes_validate.validate(board, K8S_VERSION, strict=True)
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    assert _matches(board["spec"]["podSelector"], deployment["spec"]["template"]["metadata"]["labels"])
    assert not _matches(board["spec"]["podSelector"], objects[1]["spec"]["template"]["metadata"]["labels"])
    (rule,) = board["spec"]["ingress"]
    assert rule["from"] == [{"podSelector": {}}]  # every pod of the job's namespace, no other namespace
    assert rule["ports"] == [{"protocol": "TCP", "port": TENSORBOARD_PORT}]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["ports"][0]["containerPort"] == TENSORBOARD_PORT


def test_network_policy_follows_the_job_name():
    """The worker policy is named like the job (one per job) and selects by the contract's labels."""
    _, policies = _policies(spec() | {"metadata": {"name": "x-tensorboard", "namespace": "team-a"}})
    (policy,) = policies.values()
    assert policy["spec"]["podSelector"]["matchLabels"] == {JOB_NAME_LABEL: "x-tensorboard",
                                                            COMPONENT_LABEL: COMPONENT_WORKER}
