"""Fixtures for the e2e tier: real pods on a real kubelet (tests/controlplane/node.py).

- ``real_cluster`` (session): ``(ControlPlane, RealNode)``: a control plane listening on the
  node's bridge address, one kwok node beside the real one, both stopped at the end and the
  host cleaned (containers, mounts, bridge, iptables chains); the teardown fails if anything
  is left (``host_leftovers()``).
- ``e2e_namespace`` (function): a fresh namespace enforcing the restricted Pod Security
  Standard, deleted afterwards.
- ``tandem`` (session): the chart installed with helm on the real node (tests/e2e/chart.py),
  once for every file that uses it; ``shared_claim`` (function): a claim every pod of the test's
  namespace can mount.
- ``node_images`` (session): Tandem's three images being imported into the real node's
  containerd in the background (tests/e2e/node_images.py), started with ``real_cluster`` when
  any test of the session asks for them; ``node_images.wait(name)`` once one is needed.
- ``real_node_host`` (session): the bin dir, once root, Go and the node's packages are known to
  be there; for tests that start nodes of their own. Such tests are marked ``own_node`` and run
  before any other (the session's node holds the machine's one-node lock until the end).

Every test here is marked ``e2e``. It needs root (containerd, CNI, iptables) and Go; the
Debian packages are installed by hack/install-node-deps.sh when missing. Without root or
Go the tier is skipped with the reason; any other failure to build or start fails it.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.controlplane.cluster import BuildError, GoMissing, build
from tests.controlplane.node import real_cluster as _real_cluster
from tests.e2e import chart
from tests.e2e.node_images import NodeImages

_built: dict[str, object] = {}
#: The session's background import of the images, while its node runs.
_node_images: dict[str, NodeImages] = {}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: real pods on a real kubelet node (root, containerd)")
    config.addinivalue_line("markers", "own_node: starts real nodes of its own; runs before the "
                                       "session's real_cluster takes the machine's node lock")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.e2e)
    # The session fixture's node holds the lock until the session ends: a test that needs the
    # lock for a node of its own would wait for itself. So those go first among this tier's
    # tests (in the tier's places: other tiers' order is tests/conftest.py's), the rest in order.
    places = [i for i, item in enumerate(items) if here in Path(str(item.fspath)).resolve().parents]
    ordered = sorted((items[i] for i in places), key=lambda item: item.get_closest_marker("own_node") is None)
    for i, item in zip(places, ordered, strict=True):
        items[i] = item


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    """Before the first test that needs the node, build (or find cached) its binaries and
    install its packages: outside that test's protocol, so that no per-test timeout counts
    minutes of compiling, and not at collection, so that the tiers before it overlap a cold
    build (tests/conftest.py's TIER_ORDER)."""
    if "done" not in _built and "real_node_host" in getattr(item, "fixturenames", ()):
        _prepare_node_host(item.config)
    yield


def _prepare_node_host(config: pytest.Config) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.ensure_newline()
    t0 = time.monotonic()
    try:
        _built["bin_dir"] = build()
    except BuildError as e:
        _built["error"] = e
    if os.geteuid() == 0:
        proc = subprocess.run(["bash", str(REPO / "hack" / "install-node-deps.sh")],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if proc.returncode != 0:
            _built["deps_error"] = proc.stdout[-4000:]
    _built["done"] = True
    if reporter is not None:
        reporter.write_line(f"tandem: e2e binaries and node packages ready ({time.monotonic() - t0:.0f}s)")


@pytest.fixture(scope="session")
def real_node_host() -> Path:
    """The bin dir; skips without root or Go, fails on a broken build or install."""
    error = _built.get("error")
    if isinstance(error, GoMissing):
        pytest.skip(f"the e2e tier needs Go to build the node: {error}")
    if isinstance(error, BuildError):
        pytest.fail(f"building the control plane and node failed:\n{error}", pytrace=False)
    if os.geteuid() != 0:
        pytest.skip("the e2e tier needs root (containerd, CNI bridge, iptables)")
    if "deps_error" in _built:
        pytest.fail(f"hack/install-node-deps.sh failed:\n{_built['deps_error']}", pytrace=False)
    return Path(str(_built["bin_dir"]))


@pytest.fixture(scope="session")
def real_cluster(real_node_host, request, tmp_path_factory):
    # One real node per machine: wait for another run's (a colleague's e2e run) to finish.
    with _real_cluster(nodes=1, lock_timeout=1800) as (cp, node):
        # The images go in from now on, while the tests before their first user run; only
        # when this session has such a user (a test asking for node_images, or the chart).
        if any("node_images" in getattr(item, "fixturenames", ()) for item in request.session.items):
            _node_images["imports"] = NodeImages(tmp_path_factory.mktemp("node-images") / "import.log").start()
        try:
            yield cp, node
        finally:
            imports = _node_images.pop("imports", None)
            if imports is not None:
                imports.stop()  # before the node stops: nothing may still talk to its containerd
    # An error in the session's teardown if the node left anything on the machine (checked
    # by stop() before it let the lock go: after that, another run's node may be starting).
    assert not node.leftovers, "the real node left these behind:\n" + "\n".join(node.leftovers)


@pytest.fixture(scope="session")
def node_images(real_cluster) -> NodeImages:
    """The background import real_cluster started: ``wait(name)`` before using an image."""
    imports = _node_images.get("imports")
    assert imports is not None, "real_cluster starts the import for every session with a test that asks for node_images"
    return imports


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


@pytest.fixture(scope="session")
def tandem(real_cluster, node_images, tmp_path_factory):
    yield from chart.installed_chart(real_cluster, node_images, tmp_path_factory)


@pytest.fixture
def shared_claim(real_cluster, e2e_namespace):
    yield from chart.shared_claim(real_cluster, e2e_namespace)
