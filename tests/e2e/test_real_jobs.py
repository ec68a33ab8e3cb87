"""The path a user takes first, on real pods: `helm install` the chart (the operator as a pod
from its own image, the chart's Ray head), then the example jobs, under the restricted Pod
Security Standard, on the real node (tests/controlplane/node.py).

Each test applies a copy of jobs/*.yaml with what only this cluster needs, set through the
spec's podTemplate (never in jobs/*.yaml): the real node's nodeSelector and toleration, small
resources (the machine has 2 cores), few steps, and a volume that outlives the pods where the
test needs one (a hostPath PersistentVolume bound to a claim: restricted pods may mount claims,
not hostPath; tests/e2e/chart.py). Nothing here is mocked: the operator pod talks to the apiserver through the
`kubernetes` Service, the workers rendezvous over cluster DNS, the figures go through the chart's
figures gateway to its Ray head.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request

import pytest
import yaml

from tandem import Client
from tandem.contract import tensorboard_name
from tests.controlplane import node as real
from tests.e2e.chart import (
    BASELINE,
    ON_REAL_NODE,
    REPO,
    SYSTEM,
    apply,
    describe,
    example,
    get_json,
    held_off_the_node,
    pod_logs,
    run_to_end,
    wait_for,
    with_volume,
    worker_pod,
)
from tests.support.columns import printed

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]


def test_chart_runs_operator_and_ray_head_as_real_pods(tandem):
    cp, _ = tandem
    pods = get_json(cp, "pods", "-n", SYSTEM)["items"]
    by_component = {p["metadata"]["labels"]["app.kubernetes.io/component"]: p for p in pods}
    assert set(by_component) == {"operator", "ray-head"}, [p["metadata"]["name"] for p in pods]
    for pod in by_component.values():
        assert pod["spec"]["nodeName"] == real.NODE_NAME
        assert pod["status"]["phase"] == "Running"
        assert all(c["ready"] for c in pod["status"]["containerStatuses"])
        assert pod["status"]["containerStatuses"][0]["imageID"]  # a real container, from the imported image
    # In-cluster config through the kubernetes Service: the operator holds its Lease.
    lease = get_json(cp, "lease", "tandem-operator", "-n", SYSTEM)
    assert lease["spec"]["holderIdentity"]


# ------------------------------------------------------------------ the example jobs


def test_mnist_ddp_trains_together_reports_figures_and_logs(tandem, e2e_namespace, shared_claim):
    cp, _ = tandem
    ns = e2e_namespace
    claim, directory = shared_claim
    job = with_volume(example("mnist-ddp.yaml", "mnist-ddp",
                              ["--steps", "200", "--log-every", "20", "--sleep-per-step", "0.15",
                               "--checkpoint-dir", "/shared/ckpt", "--output-dir", "/shared/out"]), claim)
    job["spec"]["metrics"] = {"enabled": True, "baselineThroughput": BASELINE}
    started = time.monotonic()
    apply(cp, ns, job)
    status = run_to_end(cp, ns, "mnist-ddp")
    print(f"\nmnist-ddp: Succeeded in {time.monotonic() - started:.0f}s")

    # Both ranks trained together: after the last step their parameters are bit-identical
    # (each rank's own process wrote rank<k>.json with a sha256 of its parameters).
    results = {k: json.loads((directory / "out" / f"rank{k}.json").read_text()) for k in (0, 1)}
    assert results[0]["world_size"] == results[1]["world_size"] == 2
    assert results[0]["steps"] == results[1]["steps"] == 200
    assert results[0]["checksum"] == results[1]["checksum"]
    assert results[1]["env"]["MASTER_ADDR"] == f"mnist-ddp-0.mnist-ddp.{ns}.svc"
    logs = pod_logs(cp, ns, "mnist-ddp")
    assert "done: 200 steps" in logs[0] and "rank 1: step 200/200" in logs[1], logs

    # `tandem logs --on kubernetes --worker 1` prints that container's own log.
    cli = subprocess.run([sys.executable, "-m", "tandem", "logs", "mnist-ddp", "--on", "kubernetes", "-n", ns,
                          "--kubeconfig", cp.kubeconfig, "--worker", "1"],
                         capture_output=True, text=True, timeout=60, env={**os.environ, "NO_COLOR": "1"})
    assert cli.returncode == 0, cli.stderr
    assert "rank 1: step 200/200" in cli.stdout and "rank 0:" not in cli.stdout, cli.stdout
    # The pods ran under the restricted Pod Security Standard (the namespace enforces it).
    assert get_json(cp, "namespace", ns)["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert status["phase"] == "Succeeded"

    # The figures: the workers posted them through the figures gateway beside the Ray head (with
    # their job's token), and the operator pod read them back over HTTP. Strict: the operator
    # reads the figures once more on the pass that finds the Job complete, when every worker's
    # shipper has flushed its last records (controller/policy/metrics.py), so status holds both
    # workers' figures as soon as it says Succeeded.
    metrics = status.get("metrics") or {}
    assert {w["index"] for w in metrics.get("perWorker", [])} == {0, 1}, describe(cp, ns)
    assert metrics["available"] and metrics["throughput"] > 0
    assert metrics["scalingEfficiency"] == pytest.approx(metrics["throughput"] / (2 * BASELINE), rel=1e-3)
    assert {w["index"] for w in metrics["perWorker"]} == {0, 1}
    row = printed(cp, ns, "mnist-ddp")
    assert row["PHASE"] == "Succeeded", row
    assert float(row["THROUGHPUT"]) == pytest.approx(metrics["throughput"], rel=1e-3)
    assert float(row["EFFICIENCY"]) == pytest.approx(metrics["scalingEfficiency"], rel=1e-3)


def test_keras_mwms_succeeds(tandem, e2e_namespace):
    cp, _ = tandem
    ns = e2e_namespace
    job = example("keras-mwms.yaml", "keras-mwms", ["--epochs", "1", "--steps-per-epoch", "10"], memory="3Gi")
    started = time.monotonic()
    apply(cp, ns, job)
    run_to_end(cp, ns, "keras-mwms")
    print(f"\nkeras-mwms: Succeeded in {time.monotonic() - started:.0f}s")
    assert {p["spec"]["nodeName"] for p in get_json(cp, "pods", "-n", ns)["items"]} == {real.NODE_NAME}


def test_a_killed_worker_container_restarts_the_group_from_its_checkpoint(tandem, e2e_namespace, shared_claim):
    """SIGKILL of worker 1's container process (as the kernel's OOM killer or a crash would end
    it), straight through containerd: the pod fails, the operator restarts the whole group,
    which resumes from the checkpoint rank 0 wrote on the shared claim."""
    cp, node = tandem
    ns = e2e_namespace
    claim, directory = shared_claim
    name = "ddp-restart"
    job = with_volume(example("mnist-ddp.yaml", name,
                              ["--steps", "80", "--log-every", "5", "--sleep-per-step", "0.25",
                               "--checkpoint-every", "10", "--checkpoint-dir", "/shared/ckpt",
                               "--output-dir", "/shared/out"]), claim)
    apply(cp, ns, job)

    def past_first_checkpoint():
        pod = worker_pod(cp, ns, name, 1)
        if pod is None:
            return None
        log = cp.kubectl("logs", pod["metadata"]["name"], "-n", ns, check=False).stdout
        return pod if "step 25/80" in log else None
    pod = wait_for("worker 1 past step 25", past_first_checkpoint, 240, explain=lambda: describe(cp, ns))
    assert (directory / "ckpt" / "checkpoint.pt").exists()
    container_id = pod["status"]["containerStatuses"][0]["containerID"].removeprefix("containerd://")
    node.ctr("tasks", "kill", "--signal", "SIGKILL", container_id)

    status = run_to_end(cp, ns, name, timeout=300)
    assert status["restarts"] == 1, status
    logs = pod_logs(cp, ns, name)
    resumed = [line for line in logs[0].splitlines() if line.startswith("rank 0: resumed from step ")]
    assert resumed and int(resumed[0].split()[-1]) >= 20, logs[0]
    results = {k: json.loads((directory / "out" / f"rank{k}.json").read_text()) for k in (0, 1)}
    assert results[0]["steps"] == results[1]["steps"] == 80
    assert results[0]["checksum"] == results[1]["checksum"]


def test_worker_0_starting_late_still_rendezvous(tandem, e2e_namespace):
    """Worker 1's pod runs well before worker 0's has an address (so before worker 0's DNS
    name exists): its launcher must wait for the name rather than fail or flood its log. An
    admission policy refuses to bind worker 0's pod to the node (the scheduler retries) until
    the test lifts it; the Job controller creates both pods as usual."""
    cp, _ = tandem
    ns = e2e_namespace
    name = "ddp-late-0"
    with held_off_the_node(cp, ns, f"{name}-0-"):
        apply(cp, ns, example("mnist-ddp.yaml", name, ["--steps", "20", "--log-every", "5"]))

        def worker_1_running():
            pod = worker_pod(cp, ns, name, 1)
            return pod if pod and pod["status"].get("phase") == "Running" else None
        wait_for("worker 1 running alone", worker_1_running, 120, explain=lambda: describe(cp, ns))
        time.sleep(30)  # worker 1's launcher looks for worker 0 all this while
        held = worker_pod(cp, ns, name, 0)
        assert held is not None and not held["spec"].get("nodeName"), describe(cp, ns)
    status = run_to_end(cp, ns, name, timeout=300)
    assert status.get("restarts", 0) == 0, status
    first, late = worker_pod(cp, ns, name, 1), worker_pod(cp, ns, name, 0)
    assert late["status"]["startTime"] > first["status"]["startTime"]
    logs = pod_logs(cp, ns, name)
    for text in logs.values():
        assert "Name or service not known" not in text and "RendezvousTimeoutError" not in text, text
    assert "done: 20 steps" in logs[0], logs


def test_tensorboard_lists_the_workers_runs(tandem, e2e_namespace, shared_claim):
    """spec.tensorboard on a ReadWriteMany claim: the workers write event files on it, the
    job's TensorBoard pod reads them, and its HTTP API (through the Service's ClusterIP, that
    is kube-proxy's rules, from the host) lists one run per worker."""
    cp, _ = tandem
    ns = e2e_namespace
    claim, directory = shared_claim
    name = "ddp-board"
    job = example("mnist-ddp.yaml", name, ["--steps", "30", "--log-every", "5"])
    job["spec"]["tensorboard"] = {"enabled": True, "claimName": claim, "logDir": "/tandem/tensorboard"}
    apply(cp, ns, job)
    run_to_end(cp, ns, name)
    assert sorted(p.name for p in (directory / name).iterdir()) == ["worker-0", "worker-1"]
    service = get_json(cp, "service", tensorboard_name(name), "-n", ns)
    url = f"http://{service['spec']['clusterIP']}:6006/data/runs"

    def runs():
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                listed = json.loads(response.read())
        except OSError:
            return None
        return listed if {"worker-0", "worker-1"} <= set(listed) else None
    wait_for("TensorBoard listing both workers' runs", runs, 180, interval=2, explain=lambda: describe(cp, ns))


def train_on_real_pods(steps: int, out: str) -> None:
    """Shipped by Client().train: PyTorch DDP over gloo, each rank starting from its own weights
    and data, so that only a working all-reduce makes them agree; each rank writes its checksum."""
    import hashlib
    import json
    import os

    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.manual_seed(rank)
    model = DistributedDataParallel(torch.nn.Linear(8, 2))
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(steps):
        optimiser.zero_grad()
        model(torch.randn(16, 8)).pow(2).mean().backward()
        optimiser.step()
    digest = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in model.parameters())).hexdigest()
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump({"world_size": dist.get_world_size(), "checksum": digest}, f)
    dist.destroy_process_group()


def test_a_python_function_trains_on_real_pods(tandem, e2e_namespace, shared_claim):
    """Client().train(func) on the real node: the source travels in the ConfigMap the SDK
    creates, both worker pods (the worker image) run it under torchrun, and they end equal."""
    cp, _ = tandem
    claim, directory = shared_claim
    image = yaml.safe_load((REPO / "jobs" / "mnist-ddp.yaml").read_text())["spec"]["image"]
    template = {**ON_REAL_NODE, "volumes": [{"name": "shared", "persistentVolumeClaim": {"claimName": claim}}],
                "volumeMounts": [{"name": "shared", "mountPath": "/shared"}]}
    client = Client(kubeconfig=cp.kubeconfig, namespace=e2e_namespace)
    job = client.train(train_on_real_pods, kwargs={"steps": 20, "out": "/shared/out"}, workers=2, framework="pytorch",
                       image=image, resources={"cpu": "700m", "memory": "2Gi"},
                       spec={"podTemplate": template, "runPolicy": {"backoffLimit": 1}})
    run_to_end(cp, e2e_namespace, job.name)
    results = {k: json.loads((directory / "out" / f"rank{k}.json").read_text()) for k in (0, 1)}
    assert results[0]["world_size"] == results[1]["world_size"] == 2
    assert results[0]["checksum"] == results[1]["checksum"], results

