"""Runs the real operator (`tandem operator run`) against the test control plane."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO
from tests.support.commands import tandem_argv
from tests.support.controlplane import install_crd
from tests.support.kwok import add_tpu_nodes
from tests.support.processes import stop_group


class Operator:
    """One `tandem operator run` process; stop() or kill() it, start() again."""

    def __init__(self, kubeconfig: str, log_path: Path, lease_namespace: str = "kube-system", *extra: str,
                 env: dict[str, str] | None = None):
        self.kubeconfig, self.log_path, self.env = kubeconfig, log_path, env or {}
        self.args = ["--health-port", "0", "--metrics-port", "0", "--lease-namespace", lease_namespace, *extra]
        self.process: subprocess.Popen | None = None

    def start(self) -> Operator:
        env = {**os.environ, "KUBECONFIG": self.kubeconfig, "PYTHONPATH": str(REPO / "operator"), **self.env}
        log = self.log_path.open("a")
        self.process = subprocess.Popen(tandem_argv("operator", "run", *self.args),
                                        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        stop_group(self.process, grace=15)

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""


def get(control_plane, namespace: str, kind: str, name: str | None = None, selector: str | None = None) -> Any:
    """One object, or a List with the selector, as kubectl prints it; None if it is not there."""
    args = ["get", kind, "-n", namespace, "-o", "json"]
    if name:
        args.insert(2, name)
    if selector:
        args += ["-l", selector]
    result = control_plane.kubectl(*args, check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


@pytest.fixture(scope="session")
def crd(control_plane):
    """The TrainingJob CRD installed and established, once per session."""
    install_crd(control_plane, timeout="30s")


@pytest.fixture(scope="module")
def operator(control_plane, crd, tmp_path_factory):
    """A cluster-wide operator for the requesting module's tests (module scope: each test
    module that imports this fixture gets its own, stopped when that module ends)."""
    add_tpu_nodes(control_plane)
    op = Operator(control_plane.kubeconfig, tmp_path_factory.mktemp("operator") / "operator.log").start()
    yield op
    op.stop()


@pytest.fixture
def ns(namespace, control_plane):
    """A namespace enforcing the restricted Pod Security Standard: worker pods must pass it."""
    control_plane.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    return namespace


def apply(control_plane, namespace, document):
    control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(document))
