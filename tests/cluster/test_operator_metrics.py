"""status.metrics on the cluster: the real operator creates each job's token Secret and points
the workers at the figures gateway; real reporters, holding the token from that Secret, post
through a real gateway to a real Ray actor; the operator reads the figures back over HTTP (the
reader token) and writes throughput and efficiency into the TrainingJob (and `kubectl get tj`)."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys

import pytest

from tandem.contract import METRICS_TOKEN_KEY, metrics_token_secret
from tandem.figures.token import secret_tag, token_uid
from tests.conftest import REPO
from tests.support.columns import printed
from tests.support.controlplane import create_namespace
from tests.support.figures import figures_gateway
from tests.support.kwok import with_pods
from tests.support.specs import example
from tests.support.waiting import wait_for

from .operator_fixture import Operator, apply, get

REPORTER = """
import time
from tandem import metrics
r = metrics.reporter()
assert r.enabled, "the reporter is off: check the TANDEM_* env"
r.total(100000)  # for status.progress's percent and ETA
while True:
    time.sleep(0.02)
    r.step(samples=64)
"""

#: A reporter whose step time is read from a file, so a test can slow a worker down and let it recover.
PACED_REPORTER = """
import sys, time
from pathlib import Path
from tandem import metrics
r = metrics.reporter()
assert r.enabled, "the reporter is off: check the TANDEM_* env"
pace = Path(sys.argv[1])
while True:
    time.sleep(float(pace.read_text()))
    r.step(samples=64)
"""


def worker_env(control_plane, namespace: str, name: str, key: str) -> dict[str, str]:
    """The metrics env of the job's worker pods, as the kubelet would fill it: the gateway's
    address from the pod template, the token from the Secret it names (which the operator made,
    under the name only the gateway `key` gives, holding the job's own token)."""
    job = wait_for("the Indexed Job", lambda: get(control_plane, namespace, "job", name), timeout=60, interval=1)
    env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    reference = env["TANDEM_METRICS_TOKEN"]["valueFrom"]["secretKeyRef"]
    uid = get(control_plane, namespace, "trainingjob", name)["metadata"]["uid"]
    expected = metrics_token_secret(name, secret_tag(key.encode(), namespace, name, uid))
    assert reference == {"name": expected, "key": METRICS_TOKEN_KEY}
    secret = get(control_plane, namespace, "secret", reference["name"])
    assert secret["metadata"]["ownerReferences"][0]["uid"] == uid  # garbage-collected with the job
    assert "TANDEM_METRICS_TOKEN" not in {e["name"] for e in env.values() if "value" in e}  # never in plain env
    token = base64.b64decode(secret["data"][reference["key"]]).decode()
    assert token_uid(key.encode(), namespace, name, token) == uid
    return {"TANDEM_METRICS_ADDRESS": env["TANDEM_METRICS_ADDRESS"]["value"], "TANDEM_METRICS_TOKEN": token}


def start_reporter(pod_env: dict[str, str], namespace: str, name: str, index: int, *args: str, code: str = REPORTER):
    """One worker's process, as a pod would run it, here on loopback."""
    env = {**os.environ, **pod_env, "PYTHONPATH": str(REPO / "operator"), "TANDEM_JOB": name,
           "TANDEM_NAMESPACE": namespace, "TANDEM_WORKER_INDEX": str(index), "TANDEM_METRICS": "1"}
    return subprocess.Popen([sys.executable, "-c", code, *args], env=env, start_new_session=True)


@pytest.fixture
def gateway(tmp_path):
    with figures_gateway(tmp_path / "ray") as metrics:
        yield metrics


def operator_with_gateway(control_plane, tmp_path, lease_namespace: str, namespace: str, gateway) -> Operator:
    control_plane.kubectl("create", "namespace", lease_namespace, check=False)
    return Operator(control_plane.kubeconfig, tmp_path / "operator.log", lease_namespace, "-n", namespace,
                    "--metrics-address", gateway.address, "--metrics-key-file", str(gateway.key_file)).start()


def test_operator_writes_status_metrics_read_from_the_gateway(control_plane, crd, namespace, tmp_path, gateway):
    operator = operator_with_gateway(control_plane, tmp_path, "lease-metrics-test", namespace, gateway)
    document = with_pods(example("mnist-ddp.yaml"), run_seconds=120)
    document["spec"]["metrics"] = {"enabled": True, "baselineThroughput": 1000.0}
    name = document["metadata"]["name"]
    reporters = []
    try:
        apply(control_plane, namespace, document)
        pod_env = worker_env(control_plane, namespace, name, gateway.key)
        assert pod_env["TANDEM_METRICS_ADDRESS"] == gateway.address
        reporters = [start_reporter(pod_env, namespace, name, index) for index in (0, 1)]

        def figures():
            status = (get(control_plane, namespace, "trainingjob", name) or {}).get("status") or {}
            metrics = status.get("metrics") or {}
            return metrics if metrics.get("available") and len(metrics.get("perWorker", [])) == 2 else None

        metrics = wait_for("status.metrics from the gateway", figures, timeout=120, interval=2)
        assert 0 < metrics["throughput"] < 2 * 2 * 64 / 0.02  # two workers, 64 samples per >= 20 ms step
        assert {w["index"] for w in metrics["perWorker"]} == {0, 1}
        assert metrics["scalingEfficiency"] == pytest.approx(metrics["throughput"] / 2000.0, rel=1e-6)
        condition = next(c for c in get(control_plane, namespace, "trainingjob", name)["status"]["conditions"]
                         if c["type"] == "MetricsAvailable")
        assert condition["status"] == "True"
        row = printed(control_plane, namespace, name)
        assert float(row["THROUGHPUT"]) > 0 and float(row["EFFICIENCY"]) > 0
        # No progress or startup deadline here: status.progress is written with every read all the same.
        progress = wait_for("an ETA", lambda: (get(control_plane, namespace, "trainingjob", name)["status"].get(
            "progress") or {}).get("eta"), timeout=60, interval=2)
        assert progress
        record = get(control_plane, namespace, "trainingjob", name)["status"]["progress"]
        assert record["stepsTotal"] == 100000 and 0 < record["percent"] < 100 and 0 < record["stepsDone"] < 100000
        row = printed(control_plane, namespace, name)
        assert 0 < float(row["PROGRESS"]) < 100 and int(row["ETA"]) > 0
        operator.stop()  # the status holds still: `tandem get` and the dashboard read the same figures
        dashboard_shows_what_tandem_get_prints(control_plane, namespace, name)
    finally:
        for process in reporters:
            process.kill()
        operator.stop()


def dashboard_shows_what_tandem_get_prints(control_plane, namespace: str, name: str) -> None:
    """`tandem dashboard`, run with the control plane's kubeconfig, lists the job in a real browser
    with the figures `tandem get` prints for it."""
    from contextlib import closing

    from tests.support.browser import Dashboard, chromium, iter_rows, screenshot
    from tests.support.commands import run_tandem

    kubeconfig = str(control_plane.kubeconfig)
    got = run_tandem("get", name, "-n", namespace, "--kubeconfig", kubeconfig, env={**os.environ, "COLUMNS": "200"})
    assert got.returncode == 0, got.stderr
    table = dict(re.findall(r"│\s*(throughput|efficiency|straggler)\s*│\s*(.+?)\s*│", got.stdout))
    assert table.get("throughput", "").endswith("samples/s"), got.stdout
    with Dashboard("--kubeconfig", kubeconfig, "--runs-dir", "/nonexistent") as board, closing(chromium()) as driver:
        driver.get(board.url)
        row = next(r for r in iter_rows(driver) if r["Name"] == name and r["Where"] == "cluster")
        screenshot(driver, "dashboard-cluster-jobs")
        assert (row["Namespace"], row["Phase"]) == (namespace, "Running"), row
        assert (row["Throughput"], row["Efficiency"]) == (table["throughput"], table["efficiency"]), (row, table)
        assert row["Straggler"].startswith("none" if table["straggler"] == "-" else table["straggler"]), (row, table)


def test_a_secret_planted_under_a_name_computed_from_the_job_is_never_mounted(control_plane, crd, namespace, tmp_path,
                                                                              gateway):
    """Someone who may create Secrets in the job's namespace sees the TrainingJob's uid as soon as it
    exists and creates, before the operator's first pass, a Secret under every name computable from
    the job alone, holding a token of its choosing. The operator cannot read Secrets and takes
    "already exists" as its own; its Secret's name carries a MAC under the gateway key, so it creates
    its own Secret beside the planted one, and the pods read the job's real token."""
    document = with_pods(example("mnist-ddp.yaml"), run_seconds=120)
    document["spec"]["metrics"] = {"enabled": True}
    name = document["metadata"]["name"]
    apply(control_plane, namespace, document)  # no operator yet: the planter wins any race
    uid = get(control_plane, namespace, "trainingjob", name)["metadata"]["uid"]
    planted = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"{name}-metrics-token-{uid}"},
               "stringData": {METRICS_TOKEN_KEY: "planted"}}
    control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(planted))
    operator = operator_with_gateway(control_plane, tmp_path, "lease-planted-test", namespace, gateway)
    try:
        pod_env = worker_env(control_plane, namespace, name, gateway.key)  # the operator's Secret, the job's token
        assert pod_env["TANDEM_METRICS_TOKEN"] != "planted"
    finally:
        operator.stop()


def test_a_recovered_straggler_is_cleared_from_status(control_plane, crd, namespace, tmp_path, gateway):
    """status.metrics is replaced, not merged: once worker 1 catches up, `straggler` is gone."""
    operator = operator_with_gateway(control_plane, tmp_path, "lease-straggler-test", namespace, gateway)
    document = with_pods(example("mnist-ddp.yaml"), run_seconds=300)
    document["spec"]["metrics"] = {"enabled": True}
    name = document["metadata"]["name"]
    paces = [tmp_path / "pace-0", tmp_path / "pace-1"]
    paces[0].write_text("0.02")
    paces[1].write_text("0.1")  # worker 1 trains at a fifth of worker 0's rate: the straggler
    reporters = []
    try:
        apply(control_plane, namespace, document)
        pod_env = worker_env(control_plane, namespace, name, gateway.key)
        reporters = [start_reporter(pod_env, namespace, name, i, str(paces[i]), code=PACED_REPORTER) for i in (0, 1)]

        def metrics():
            return ((get(control_plane, namespace, "trainingjob", name) or {}).get("status") or {}).get("metrics") or {}

        flagged = wait_for("worker 1 flagged", lambda: metrics().get("straggler") == 1, timeout=120, interval=2)
        assert flagged
        paces[1].write_text("0.02")  # it recovers; its slow steps leave the 30 s window
        wait_for("the straggler cleared", lambda: metrics().get("available") and "straggler" not in metrics()
                 and len(metrics().get("perWorker", [])) == 2, timeout=150, interval=3)
    finally:
        for process in reporters:
            process.kill()
        operator.stop()


def test_a_hostile_job_cannot_write_or_read_another_namespaces_figures(control_plane, crd, namespace, tmp_path,
                                                                       gateway):
    """Job `victim` in one namespace, job `hostile` in another, both with tokens the operator made:
    the hostile job's token (read from its own Secret, as its pods get it) neither writes the
    victim's figures nor reads them, and the victim's status keeps its own figures only."""
    import json
    import urllib.error
    import urllib.request

    from tandem.figures import wire

    hostile_ns = create_namespace(control_plane, f"{namespace[:40]}-hostile")
    control_plane.kubectl("create", "namespace", "lease-hostile-test", check=False)
    operator = Operator(control_plane.kubeconfig, tmp_path / "operator.log", "lease-hostile-test", "-n", namespace,
                        "-n", hostile_ns, "--metrics-address", gateway.address,
                        "--metrics-key-file", str(gateway.key_file)).start()
    victim = with_pods(example("mnist-ddp.yaml"), run_seconds=120)
    victim["metadata"]["name"] = "victim"
    victim["spec"]["metrics"] = {"enabled": True}
    hostile = with_pods(example("mnist-ddp.yaml"), run_seconds=120)
    hostile["metadata"]["name"] = "hostile"
    hostile["spec"]["metrics"] = {"enabled": True}
    reporters = []
    try:
        apply(control_plane, namespace, victim)
        apply(control_plane, hostile_ns, hostile)
        victim_env = worker_env(control_plane, namespace, "victim", gateway.key)
        hostile_env = worker_env(control_plane, hostile_ns, "hostile", gateway.key)
        reporters = [start_reporter(victim_env, namespace, "victim", index) for index in (0, 1)]

        def post(target_ns: str, name: str, records: bytes) -> int:
            request = urllib.request.Request(gateway.address + wire.records_path(target_ns, name), data=records,
                                             method="POST",
                                             headers={"Authorization": f"Bearer {hostile_env['TANDEM_METRICS_TOKEN']}"})
            try:
                with urllib.request.urlopen(request, timeout=10) as answer:
                    return answer.status
            except urllib.error.HTTPError as error:
                return error.code

        forged = wire.encode(7, 0, [[1e9 + i, 10**9, 0.001, None] for i in range(100)])
        assert post(namespace, "victim", forged) == 403  # the hostile token on the victim
        assert post(hostile_ns, "victim", forged) == 403  # its own namespace, the victim's name
        assert post(hostile_ns, "hostile", wire.encode(0, 0, [[1.0, 64, 0.1, None]])) == 204  # its own job: fine
        victim_uid = get(control_plane, namespace, "trainingjob", "victim")["metadata"]["uid"]
        read = urllib.request.Request(gateway.address + wire.job_path(namespace, "victim", victim_uid),
                                      headers={"Authorization": f"Bearer {hostile_env['TANDEM_METRICS_TOKEN']}"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(read, timeout=10)
        assert refused.value.code == 403

        def figures():
            metrics = ((get(control_plane, namespace, "trainingjob", "victim") or {}).get("status") or {}).get("metrics") or {}
            return metrics if metrics.get("available") and len(metrics.get("perWorker", [])) == 2 else None

        metrics = wait_for("the victim's figures", figures, timeout=120, interval=2)
        assert {w["index"] for w in metrics["perWorker"]} == {0, 1}
        assert metrics["throughput"] < 2 * 64 / 0.02 and not metrics.get("reason"), json.dumps(metrics)
    finally:
        for process in reporters:
            process.kill()
        operator.stop()
        control_plane.kubectl("delete", "namespace", hostile_ns, "--wait=false", check=False)
