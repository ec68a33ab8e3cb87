"""Fixtures for the e2e tier: real pods on a real kubelet (tests/controlplane/node.py).

- ``real_cluster`` (session): ``(ControlPlane, RealNode)``: a control plane listening on the
  node's bridge address, one kwok node beside the real one, both stopped at the end and the
  host cleaned (containers, mounts, bridge, iptables chains); the teardown fails if anything
  is left (``host_leftovers()``).
- ``e2e_namespace`` (function): a fresh namespace enforcing the restricted Pod Security
  Standard, deleted afterwards.

Every test here is marked ``e2e``. It needs root (containerd, CNI, iptables) and Go; the
Debian packages are installed by hack/install-node-deps.sh when missing. Without root or
Go the tier is skipped with the reason; any other failure to build or start fails it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parents[2]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from tests.controlplane.cluster import BuildError, GoMissing, build  # noqa: E402
from tests.controlplane.node import host_leftovers  # noqa: E402
from tests.controlplane.node import real_cluster as _real_cluster  # noqa: E402

_built: dict[str, object] = {}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: real pods on a real kubelet node (root, containerd)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.e2e)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build (or find cached) binaries and install the node's packages before any test
    runs, so that no per-test timeout counts minutes of compiling."""
    if session.config.option.collectonly:
        return
    if not any("real_cluster" in getattr(item, "fixturenames", ()) for item in session.items):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    t0 = time.monotonic()
    try:
        _built["bin_dir"] = build()
    except BuildError as e:
        _built["error"] = e
    if os.geteuid() == 0:
        proc = subprocess.run(["bash", str(_REPO / "hack" / "install-node-deps.sh")],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if proc.returncode != 0:
            _built["deps_error"] = proc.stdout[-4000:]
    if reporter is not None:
        reporter.write_line(f"tandem: e2e binaries and node packages ready ({time.monotonic() - t0:.0f}s)")


@pytest.fixture(scope="session")
def real_cluster():
    error = _built.get("error")
    if isinstance(error, GoMissing):
        pytest.skip(f"the e2e tier needs Go to build the node: {error}")
    if isinstance(error, BuildError):
        pytest.fail(f"building the control plane and node failed:\n{error}", pytrace=False)
    if os.geteuid() != 0:
        pytest.skip("the e2e tier needs root (containerd, CNI bridge, iptables)")
    if "deps_error" in _built:
        pytest.fail(f"hack/install-node-deps.sh failed:\n{_built['deps_error']}", pytrace=False)
    with _real_cluster(nodes=1) as (cp, node):
        yield cp, node
    # An error in the session's teardown if the node left anything on the machine.
    left = host_leftovers()
    assert not left, "the real node left these behind:\n" + "\n".join(left)


@pytest.fixture
def e2e_namespace(real_cluster, request):
    cp, _ = real_cluster
    base = request.node.name.lower().replace("_", "-")
    base = "".join(ch for ch in base if ch.isalnum() or ch == "-").strip("-")[:40] or "test"
    name = f"{base}-{uuid.uuid4().hex[:6]}"
    cp.kubectl("create", "namespace", name)
    cp.kubectl("label", "namespace", name, "pod-security.kubernetes.io/enforce=restricted")
    deadline = time.monotonic() + 30
    while cp.kubectl("get", "serviceaccount", "default", "-n", name, check=False).returncode != 0:
        if time.monotonic() > deadline:
            pytest.fail(f"ServiceAccount default never appeared in namespace {name}")
        time.sleep(0.2)
    yield name
    cp.kubectl("delete", "namespace", name, "--wait=false", check=False)
