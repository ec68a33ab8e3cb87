"""The Helm chart on the real control plane: install, RBAC as the chart's ServiceAccount,
a job run by the real operator holding only those rights, upgrade, uninstall.

kwok nodes cannot run containers, so the operator Deployment's pod is only scheduled and marked
Running (which still proves it passes the `restricted` Pod Security Standard). The operator that
does the work is a local `tandem operator run` process that authenticates with a token of the
chart's ServiceAccount: whatever the chart's RBAC does not grant, it cannot do.
"""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path

import pytest
import yaml

from tandem.controller.writer import NAMESPACE_TERMINATING
from tests.support.controlplane import create_namespace
from tests.support.helm import CHART, helm_runner
from tests.support.kwok import job_document
from tests.support.waiting import wait_for

from .operator_fixture import Operator

RELEASE = "tandem"
SYSTEM = "tandem-system"
SA = "tandem-operator"
AS_SA = f"--as=system:serviceaccount:{SYSTEM}:{SA}"
RESTRICTED = "pod-security.kubernetes.io/enforce=restricted"
# In namespaced mode the chart grants nothing cluster-scoped. Unless the operator turns kopf's
# scanning off there (settings.scanning.disabled), kopf retries its forbidden cluster-scoped
# list of namespaces and CRDs with its error backoffs (1+1+2+3+5+8+13+21 s) before it falls back to
# the namespaces it was given.
KOPF_FORBIDDEN_RETRIES = 60
KOPF_SCANS = ('cannot list resource "namespaces" in API group "" at the cluster scope',
              'cannot list resource "customresourcedefinitions" in API group "apiextensions.k8s.io" at the cluster scope')
# Everything the chart makes besides the CRD, as (kind, namespace or None, name); cluster-wide mode.
CLUSTER_WIDE_OBJECTS = {
    ("serviceaccount", SYSTEM, SA),
    ("clusterrole", None, "tandem-operator"),
    ("clusterrolebinding", None, "tandem-operator"),
    ("role", SYSTEM, "tandem-operator-leader-election"),
    ("rolebinding", SYSTEM, "tandem-operator-leader-election"),
    ("deployment", SYSTEM, "tandem-operator"),
    ("service", SYSTEM, "tandem-operator-metrics"),
}


@pytest.fixture(scope="module")
def helm(control_plane, tmp_path_factory):
    return helm_runner(control_plane.kubeconfig, tmp_path_factory.mktemp("helm-home"), timeout=120)


@pytest.fixture
def system(control_plane, helm):
    """tandem-system, enforcing the restricted Pod Security Standard; emptied afterwards."""
    control_plane.kubectl("create", "namespace", SYSTEM, check=False)
    control_plane.kubectl("label", "namespace", SYSTEM, RESTRICTED, "--overwrite")
    yield SYSTEM
    helm("uninstall", RELEASE, "-n", SYSTEM, "--wait", "--timeout", "60s", check=False)
    control_plane.kubectl("delete", "namespace", SYSTEM, "--wait=false", check=False)
    wait_for(f"namespace {SYSTEM} gone",
             lambda: control_plane.kubectl("get", "namespace", SYSTEM, check=False).returncode != 0, timeout=60)


@pytest.fixture
def watched(control_plane):
    """Two namespaces for TrainingJobs (restricted, as worker pods must pass it) and one unwatched."""
    suffix = uuid.uuid4().hex[:6]
    names = [f"install-{which}-{suffix}" for which in ("a", "b", "other")]
    for name in names:
        create_namespace(control_plane, name, "restricted")
    yield names
    for name in names:
        control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


def can(control_plane, verb: str, resource: str, namespace: str | None = None, *extra: str) -> bool:
    args = ["auth", "can-i", verb, resource, AS_SA, *extra]
    args += ["-n", namespace] if namespace else []
    result = control_plane.kubectl(*args, check=False)
    answer = result.stdout.strip()
    assert answer in ("yes", "no"), result.stdout + result.stderr
    return answer == "yes"


def service_account_kubeconfig(control_plane, path: Path) -> str:
    """A kubeconfig that is the chart's ServiceAccount: a bound token, the control plane's CA."""
    token = control_plane.kubectl("create", "token", SA, "-n", SYSTEM, "--duration=1h").stdout.strip()
    admin = yaml.safe_load(Path(control_plane.kubeconfig).read_text())
    ca = admin["clusters"][0]["cluster"]["certificate-authority-data"]
    base64.b64decode(ca)  # it is the CA bundle, not a path
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "sa",
        "clusters": [{"name": "cp", "cluster": {"server": control_plane.server, "certificate-authority-data": ca}}],
        "users": [{"name": SA, "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "cp", "user": SA}}],
    }))
    return str(path)


def exists(control_plane, kind: str, namespace: str | None, name: str) -> bool:
    args = ["get", kind, name] + (["-n", namespace] if namespace else [])
    return control_plane.kubectl(*args, check=False).returncode == 0


def phase(control_plane, namespace: str, name: str) -> str | None:
    result = control_plane.kubectl("get", "tj", name, "-n", namespace, "-o", "json", check=False)
    return (json.loads(result.stdout).get("status") or {}).get("phase") if result.returncode == 0 else None


def short_job(name: str) -> dict:
    return job_document(name, run_seconds=1)


def run_a_job(control_plane, kubeconfig: str, log: Path, namespace: str, *operator_args: str,
              unwatched: str | None = None) -> str:
    """Start the operator as the ServiceAccount, take a job to Succeeded, stop it; returns its log."""
    timeout = 60 if "-n" not in operator_args else 60 + KOPF_FORBIDDEN_RETRIES
    operator = Operator(kubeconfig, log, SYSTEM, *operator_args).start()
    try:
        control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(short_job("via-chart")))
        if unwatched:
            control_plane.kubectl("apply", "-n", unwatched, "-f", "-", input=json.dumps(short_job("ignored")))
        try:
            wait_for("Succeeded under the chart's RBAC", lambda: phase(control_plane, namespace, "via-chart")
                     == "Succeeded" or (operator.process.poll() is not None), timeout=timeout)
        except AssertionError as error:
            raise AssertionError(f"{error}; operator log:\n{operator.log()[-6000:]}") from None
        assert operator.process.poll() is None, operator.log()
        assert phase(control_plane, namespace, "via-chart") == "Succeeded", operator.log()
        table = control_plane.kubectl("get", "tj", "-n", namespace).stdout
        assert "via-chart" in table and "Succeeded" in table
        lease = json.loads(control_plane.kubectl("get", "lease", "tandem-operator", "-n", SYSTEM, "-o", "json").stdout)
        assert lease["spec"]["holderIdentity"]
        if unwatched:
            assert phase(control_plane, unwatched, "ignored") is None  # never seen: not watched
    finally:
        operator.stop()
    text = operator.log()
    assert "Traceback" not in text, text
    # Nothing the operator itself does may be refused; the only refusals allowed are kopf's
    # cluster-scoped scans of namespaces and CRDs in namespaced mode (see the test below). A
    # cluster-wide operator may also meet another test's namespace while it is deleted: the API
    # server answers that with 403 too, and the operator names the cause (not a permission).
    for line in text.splitlines():
        if "forbidden" in line.lower() and NAMESPACE_TERMINATING not in line:
            assert "-n" in operator_args and any(scan in line for scan in KOPF_SCANS), line
    return text


def test_cluster_wide_install_run_upgrade_uninstall(control_plane, helm, system, watched, tmp_path):
    out = helm("install", RELEASE, str(CHART), "-n", SYSTEM, "--wait", "--timeout", "60s").stdout
    assert "kubectl get tj" in out and "every namespace" in out  # NOTES.txt
    assert control_plane.kubectl("get", "crd", "trainingjobs.tandem.dev", check=False).returncode == 0
    for kind, namespace, name in CLUSTER_WIDE_OBJECTS:
        assert exists(control_plane, kind, namespace, name), (kind, namespace, name)
    # The operator pod was admitted under `restricted` and (kwok) runs.
    pods = json.loads(control_plane.kubectl("get", "pods", "-n", SYSTEM, "-l", "app.kubernetes.io/component=operator",
                                            "-o", "json").stdout)["items"]
    assert len(pods) == 1 and pods[0]["status"]["phase"] == "Running"

    a, _b, other = watched
    for namespace in (a, other, "default"):
        assert can(control_plane, "create", "jobs.batch", namespace)
        assert can(control_plane, "patch", "trainingjobs.tandem.dev", namespace, "--subresource=status")
        assert not can(control_plane, "get", "secrets", namespace)
        assert not can(control_plane, "create", "pods", namespace)
        assert not can(control_plane, "create", "pods/exec", namespace)
    assert not can(control_plane, "list", "secrets", None, "--all-namespaces")
    assert can(control_plane, "watch", "customresourcedefinitions.apiextensions.k8s.io")
    assert not can(control_plane, "create", "customresourcedefinitions.apiextensions.k8s.io")
    assert can(control_plane, "create", "leases.coordination.k8s.io", SYSTEM)
    assert can(control_plane, "update", "leases.coordination.k8s.io/tandem-operator", SYSTEM)
    assert not can(control_plane, "update", "leases.coordination.k8s.io/someone-else", SYSTEM)
    assert not can(control_plane, "create", "leases.coordination.k8s.io", a)

    # The real operator, as the ServiceAccount, cluster-wide; stopped before this test returns.
    run_a_job(control_plane, service_account_kubeconfig(control_plane, tmp_path / "sa.kubeconfig"),
              tmp_path / "operator.log", a)

    helm("upgrade", RELEASE, str(CHART), "-n", SYSTEM, "--set", "replicas=2",
         "--set", "operator.extraArgs={--lease-namespace,tandem-system}", "--wait", "--timeout", "60s")
    deployment = json.loads(control_plane.kubectl("get", "deployment", "tandem-operator", "-n", SYSTEM,
                                                  "-o", "json").stdout)
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["template"]["spec"]["containers"][0]["args"][-2:] == ["--lease-namespace", SYSTEM]
    history = json.loads(helm("history", RELEASE, "-n", SYSTEM, "-o", "json").stdout)
    assert [h["revision"] for h in history] == [1, 2] and history[-1]["status"] == "deployed"

    helm("uninstall", RELEASE, "-n", SYSTEM, "--wait", "--timeout", "60s")
    for kind, namespace, name in CLUSTER_WIDE_OBJECTS:
        assert not exists(control_plane, kind, namespace, name), (kind, namespace, name)
    # As helm does: the CRD (and so every TrainingJob) stays.
    assert exists(control_plane, "crd", None, "trainingjobs.tandem.dev")
    assert not can(control_plane, "create", "jobs.batch", a)


def test_namespaced_install_runs_a_job_as_the_service_account(control_plane, helm, system, watched, tmp_path):
    a, b, other = watched
    out = helm("install", RELEASE, str(CHART), "-n", SYSTEM, "--set", f"watchNamespaces={{{a},{b}}}",
               "--wait", "--timeout", "60s").stdout
    assert f"watches only: {a}, {b}" in out
    assert not exists(control_plane, "clusterrole", None, "tandem-operator")
    assert not exists(control_plane, "clusterrolebinding", None, "tandem-operator")
    args = json.loads(control_plane.kubectl("get", "deployment", "tandem-operator", "-n", SYSTEM, "-o", "json").stdout
                      )["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[-4:] == ["-n", a, "-n", b]

    for namespace in (a, b):
        assert can(control_plane, "create", "jobs.batch", namespace)
        assert can(control_plane, "watch", "pods", namespace)
        assert can(control_plane, "create", "events", namespace)
        assert not can(control_plane, "get", "secrets", namespace)
    for namespace in (other, "default", SYSTEM):
        assert not can(control_plane, "create", "jobs.batch", namespace)
        assert not can(control_plane, "get", "trainingjobs.tandem.dev", namespace)
        assert not can(control_plane, "get", "secrets", namespace)
    assert not can(control_plane, "list", "trainingjobs.tandem.dev", None, "--all-namespaces")
    assert not can(control_plane, "list", "customresourcedefinitions.apiextensions.k8s.io")
    assert not can(control_plane, "list", "namespaces")
    assert can(control_plane, "update", "leases.coordination.k8s.io/tandem-operator", SYSTEM)

    # The operator with exactly the arguments the chart gives it (less the ports), as the SA.
    log = run_a_job(control_plane, service_account_kubeconfig(control_plane, tmp_path / "sa.kubeconfig"),
                    tmp_path / "operator.log", a, "-n", a, "-n", b, unwatched=other)
    # kopf, given no cluster-scoped rights, either has its scanning turned off by the operator in
    # namespaced mode, or retries its scans of namespaces and CRDs (about 54 s), then says so and
    # goes on with the namespaces it was given.
    if "forbidden" in log:
        assert "Not enough permissions to list namespaces" in log

    helm("uninstall", RELEASE, "-n", SYSTEM, "--wait", "--timeout", "60s")
    for namespace in (a, b):
        assert not exists(control_plane, "role", namespace, "tandem-operator")
        assert not exists(control_plane, "rolebinding", namespace, "tandem-operator")
