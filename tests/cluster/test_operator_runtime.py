"""The operator process itself: health and Prometheus endpoints, one leader among replicas, what
it watches (server-side label selection, read from the apiserver's audit log), the Lease renewal
against a paused apiserver, and /healthz with a wedged work queue."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from urllib.parse import parse_qs, urlparse

from tandem._sys.ports import free_port
from tandem.contract import JOB_NAME_LABEL, OPERATOR_USER_AGENT
from tandem.controller.runtime import WORKERS
from tandem.controller.timing import LEASE_SECONDS, RENEW_DEADLINE_SECONDS
from tests.conftest import REPO
from tests.support.kwok import with_pods
from tests.support.specs import example
from tests.support.waiting import wait_for

from .operator_fixture import Operator, apply, crd  # noqa: F401 - crd fixture
from .test_operator import phase


def http_get(url: str) -> str:
    """The body, also of an error status (a red /healthz answers 503 with its reason); "" if none."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.read().decode()
    except urllib.error.HTTPError as error:
        return error.read().decode()
    except OSError:
        return ""


def test_health_and_metrics_endpoints(control_plane, crd, namespace, tmp_path):  # noqa: F811
    control_plane.kubectl("create", "namespace", "lease-health-test", check=False)
    health, metrics = free_port(), free_port()
    leader = Operator(control_plane.kubeconfig, tmp_path / "leader.log", "lease-health-test", "-n", namespace)
    leader.args[:4] = ["--health-port", str(health), "--metrics-port", str(metrics)]
    leader.start()
    follower = None
    try:
        wait_for("/healthz", lambda: http_get(f"http://127.0.0.1:{health}/healthz"), 40)
        document = with_pods(example("mnist-ddp.yaml"), run_seconds=1)
        apply(control_plane, namespace, document)
        wait_for("Succeeded", lambda: phase(control_plane, namespace, "mnist-ddp") == "Succeeded", 60)
        scraped = http_get(f"http://127.0.0.1:{metrics}/metrics")
        assert 'tandem_reconcile_total{result="ok"}' in scraped
        assert 'tandem_trainingjobs{phase="Succeeded"} 1.0' in scraped
        # A second replica waits for the lease, says so, and is healthy meanwhile (probes pass).
        follower_health = free_port()
        follower = Operator(control_plane.kubeconfig, tmp_path / "follower.log", "lease-health-test", "-n", namespace)
        follower.args[:2] = ["--health-port", str(follower_health)]
        follower.start()
        wait_for("follower waits", lambda: "another replica leads" in follower.log(), 30)
        assert http_get(f"http://127.0.0.1:{follower_health}/healthz").startswith("ok: waiting for the lease")
        assert http_get(f"http://127.0.0.1:{health}/healthz").startswith("ok: leading")
    finally:
        leader.stop()
        if follower:
            follower.stop()


def test_only_one_replica_acts_and_a_follower_takes_over(control_plane, crd, namespace, tmp_path):  # noqa: F811
    control_plane.kubectl("create", "namespace", "lease-ha-test", check=False)
    first = Operator(control_plane.kubeconfig, tmp_path / "first.log", "lease-ha-test", "-n", namespace).start()
    wait_for("first leads", lambda: "leading as" in first.log(), 30)
    second = Operator(control_plane.kubeconfig, tmp_path / "second.log", "lease-ha-test", "-n", namespace).start()
    try:
        wait_for("second waits", lambda: "another replica leads" in second.log(), 30)
        document = with_pods(example("mnist-ddp.yaml"), run_seconds=1)
        document["metadata"]["name"] = "before-failover"
        apply(control_plane, namespace, document)
        wait_for("Succeeded", lambda: phase(control_plane, namespace, "before-failover") == "Succeeded", 60)
        assert "before-failover" in first.log() and "before-failover" not in second.log()
        first.kill()  # no clean release: the follower must wait for the lease to expire
        killed = time.monotonic()
        wait_for("second leads", lambda: "leading as" in second.log(), 45)
        takeover = time.monotonic() - killed
        document["metadata"]["name"] = "after-failover"
        apply(control_plane, namespace, document)
        wait_for("Succeeded", lambda: phase(control_plane, namespace, "after-failover") == "Succeeded", 60)
        assert "after-failover" in second.log()
        print(f"takeover after SIGKILL of the leader: {takeover:.1f} s")
    finally:
        first.kill()
        second.stop()


# ---------------------------------------------------------------------------- watch scope


def operator_watches(control_plane, since: int) -> list[dict]:
    """The operator's list and watch requests for children, from the apiserver's audit log (its
    own User-Agent; kopf's, kopf/<version>, would show a watch of children left to kopf), among
    the lines after the first `since`."""
    lines = control_plane.audit_log.read_text().splitlines()[since:]
    events = [json.loads(line) for line in lines if line.strip()]
    return [e for e in events if e.get("userAgent", "").startswith(("kopf/", OPERATOR_USER_AGENT))
            and e["verb"] in ("list", "watch")]


def noise(namespace: str, count: int) -> list[dict]:
    """Unlabelled Pods, Jobs and Services (another tenant's): none is the operator's business.
    The Jobs are suspended and the Pods unschedulable, so they cost the control plane little."""
    objects: list[dict] = []
    for i in range(count):
        objects.append({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"noise-{i}", "namespace": namespace},
                        "spec": {"nodeSelector": {"tandem.dev/nowhere": "true"},
                                 "containers": [{"name": "c", "image": "busybox"}]}})
        objects.append({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": f"noise-{i}", "namespace": namespace},
                        "spec": {"suspend": True, "template": {"spec": {
                            "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}})
        objects.append({"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"noise-{i}", "namespace": namespace},
                        "spec": {"clusterIP": "None", "ports": [{"port": 80}]}})
    return objects


def test_child_watches_are_label_selected_by_the_apiserver(control_plane, crd, namespace, tmp_path):  # noqa: F811
    """A filter applied after the objects arrive (kopf's `labels=`) lets every object of the cluster
    cross the wire; the operator must ask the apiserver for labelled children only. Run cluster-wide (the case where another
    tenant's objects would all flow to it), it is checked at the apiserver: every list and watch
    request it makes for Pods, Jobs and Services carries labelSelector=tandem.dev/job-name. Then
    another namespace fills with unlabelled objects while a labelled job still runs to its end."""
    control_plane.kubectl("create", "namespace", "lease-watch-test", check=False)
    other = f"{namespace}-other"
    control_plane.kubectl("create", "namespace", other)
    audit_start = len(control_plane.audit_log.read_text().splitlines())
    op = Operator(control_plane.kubeconfig, tmp_path / "operator.log", "lease-watch-test").start()  # cluster-wide
    try:
        def watches_open() -> set[str]:
            return {e["objectRef"]["resource"] for e in operator_watches(control_plane, audit_start)
                    if e["verb"] == "watch"}

        wait_for("the operator's watches of pods, jobs and services", lambda: watches_open() >= {"pods", "jobs", "services"},
                 60, 0.5, explain=op.log)
        control_plane.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                                    "items": noise(other, 40)}))
        document = with_pods(example("mnist-ddp.yaml"), run_seconds=1)
        document["metadata"]["name"] = "selected"
        apply(control_plane, namespace, document)
        wait_for("Succeeded", lambda: phase(control_plane, namespace, "selected") == "Succeeded", 90, explain=op.log)
        assert op.process.poll() is None, op.log()[-3000:]

        requests = operator_watches(control_plane, audit_start)
        selectors = {}
        for event in requests:
            query = parse_qs(urlparse(event["requestURI"]).query)
            selectors.setdefault((event["objectRef"]["resource"], event["verb"]), set()).update(
                query.get("labelSelector", ["<none>"]))
        print(f"\noperator's child list/watch requests seen by the apiserver: {len(requests)}; "
              f"selectors: { {f'{r} {v}': sorted(s) for (r, v), s in sorted(selectors.items())} }")
        assert {r for r, _ in selectors} == {"pods", "jobs", "services"}, selectors
        assert all(s == {JOB_NAME_LABEL} for s in selectors.values()), selectors
        # Every one of them, cluster-wide as asked: no namespace-by-namespace detour.
        assert all("namespace" not in e["objectRef"] for e in requests), requests[:3]
        # The noise is there for anyone who asks without a selector; the operator never asked so.
        listed = json.loads(control_plane.kubectl("get", "pods,jobs,services", "-n", other, "-o", "json").stdout)
        assert len(listed["items"]) >= 120
    except BaseException:
        print(f"operator log tail:\n{op.log()[-4000:]}")
        raise
    finally:
        op.stop()
        control_plane.kubectl("delete", "namespace", other, "--wait=false", check=False)


# ---------------------------------------------------------------------------- Lease renewal


def apiserver_ready(control_plane) -> bool:
    return control_plane.kubectl("get", "--raw", "/readyz", check=False, timeout=10).returncode == 0


def test_leader_steps_down_in_time_when_the_apiserver_stops_answering(control_plane, crd, namespace, tmp_path):  # noqa: F811
    """The apiserver paused (SIGSTOP: connections open, nothing answers), as in a network
    partition. Before the timeouts, the renewal's call hung for ever: the old leader kept acting
    while a follower, seeing the lease expire, took over. Now renewal gives up at its deadline,
    before the lease can expire, and the process exits (1) to come back as a follower."""
    control_plane.kubectl("create", "namespace", "lease-pause-test", check=False)
    op = Operator(control_plane.kubeconfig, tmp_path / "operator.log", "lease-pause-test", "-n", namespace).start()
    apiserver = control_plane.component("kube-apiserver")
    paused = None
    try:
        wait_for("leading", lambda: "leading as" in op.log(), 60, explain=op.log)
        time.sleep(3)  # past kopf's start-up and at least one renewal
        apiserver.signal_group(signal.SIGSTOP)
        paused = time.monotonic()
        wait_for("the leader stepping down", lambda: "lost the lease" in op.log(), LEASE_SECONDS + 20, 0.1,
                 explain=lambda: op.log()[-3000:])
        stepped_down = time.monotonic() - paused
        # Renewed at most RETRY_SECONDS before the pause: gave up by its renew deadline after that
        # renewal, before anyone could take the lease (LEASE_SECONDS after it).
        assert stepped_down < LEASE_SECONDS, f"stepped down {stepped_down:.1f} s after the pause:\n{op.log()[-3000:]}"
        try:
            op.process.wait(30)  # still paused: leaving must not hang on the apiserver either
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the operator did not exit within 30 s of stepping down:\n{op.log()[-3000:]}") from None
        exited = time.monotonic() - paused
        assert op.process.returncode == 1, op.log()[-3000:]
        # The workers stopped with the step-down, not seconds later when kopf was done.
        log = op.log()
        assert log.index("stopped reconciling") > log.index("lost the lease"), log[-3000:]
        print(f"\napiserver paused: stepped down after {stepped_down:.1f} s (renew deadline {RENEW_DEADLINE_SECONDS} s, "
              f"lease {LEASE_SECONDS} s), exited after {exited:.1f} s")
    finally:
        if paused is not None:
            apiserver.signal_group(signal.SIGCONT)
            wait_for("the apiserver ready again", lambda: apiserver_ready(control_plane), 60, 0.5)
        op.kill()


# ---------------------------------------------------------------------------- /healthz and the queue

#: Loaded by the operator's interpreter (sitecustomize, found first on PYTHONPATH): every
#: reconcile waits for ever, as a handler stuck on a call without a timeout would. The event loop
#: keeps running, so only the queue's progress can tell.
WEDGE = """
from tandem.controller import runtime

async def _wedged(self, key):
    import asyncio
    await asyncio.Event().wait()

runtime.Controller._reconcile = _wedged
"""


def test_healthz_turns_red_when_the_work_queue_wedges(control_plane, crd, namespace, tmp_path):  # noqa: F811
    stall = 3
    wedge = tmp_path / "wedge"
    wedge.mkdir()
    (wedge / "sitecustomize.py").write_text(WEDGE)
    health = free_port()
    control_plane.kubectl("create", "namespace", "lease-wedge-test", check=False)
    op = Operator(control_plane.kubeconfig, tmp_path / "operator.log", "lease-wedge-test", "-n", namespace,
                  "--queue-stall-seconds", str(stall), env={"PYTHONPATH": f"{wedge}:{REPO / 'operator'}"})
    op.args[:2] = ["--health-port", str(health)]
    op.start()
    url = f"http://127.0.0.1:{health}/healthz"
    try:
        wait_for("leading", lambda: http_get(url).startswith("ok: leading"), 60, 0.5, explain=op.log)
        time.sleep(stall + 6)  # idle for longer than the bound, one heartbeat included: still green
        assert http_get(url).startswith("ok: leading"), http_get(url)
        # WORKERS jobs wedge every worker, one more waits with no pass ever finishing. One apply
        # for all: one at a time, 17 applies could outlast the wait on a busy machine.
        documents = []
        for i in range(WORKERS + 1):
            document = with_pods(example("mnist-ddp.yaml"), run_seconds=1)
            document["metadata"]["name"] = f"wedge-{i}"
            documents.append(document)
        apply(control_plane, namespace, {"apiVersion": "v1", "kind": "List", "items": documents})
        red = wait_for("/healthz red", lambda: re.match(r"unhealthy: .*work queue wedged", http_get(url)) and http_get(url),
                       stall + 30, 0.5, explain=op.log)
        print(f"\n/healthz with every worker wedged: {red.strip()}")
        assert op.process.poll() is None, op.log()[-3000:]
        # Nothing was reconciled: the wedge, not a failure elsewhere, is what /healthz reports.
        assert phase(control_plane, namespace, "wedge-0") is None
    finally:
        op.stop()
