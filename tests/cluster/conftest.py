"""Fixtures for tests against the real control plane (tests/controlplane).

- ``control_plane`` (session): a started :class:`tests.controlplane.cluster.ControlPlane`;
  built on first use (cached under ~/.cache/tandem/controlplane), stopped at the end.
  Skips only when no Go toolchain exists *and* nothing is cached; a failing build or
  start fails the tests loudly.
- ``namespace`` (function): a fresh namespace, deleted afterwards.
- ``k8s_api`` (session): a ``kubernetes.client.ApiClient`` for the control plane.
"""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parents[2]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from tests.support.controlplane import build_once, create_namespace, started_control_plane  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "cluster: needs the real control plane built from upstream Kubernetes"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.cluster)


_build_awaited = False


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    """Before the first test that uses a control plane, build it (or find it cached): outside
    that test's protocol, so that no per-test timeout counts minutes of compiling, and not
    at collection, so that the tiers run before it (unit, local) overlap a cold build."""
    global _build_awaited
    if not _build_awaited and {"control_plane", "cp"} & set(getattr(item, "fixturenames", ())):
        _build_awaited = True
        reporter = item.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.ensure_newline()
            reporter.write_line(
                "tandem: building the test control plane if not cached "
                "(tests/controlplane/build.sh; cold: about 40 CPU-minutes, 20 to 25 minutes on a 2-core machine)"
            )
        t0 = time.monotonic()
        bin_dir = build_once()
        if reporter is not None and bin_dir is not None:
            reporter.write_line(f"tandem: control plane binaries in {bin_dir} ({time.monotonic() - t0:.0f}s)")
    yield


@pytest.fixture(scope="session")
def control_plane():
    with started_control_plane() as cp:
        yield cp


@pytest.fixture(scope="session")
def k8s_api(control_plane):
    from kubernetes import config

    api = config.new_client_from_config(config_file=control_plane.kubeconfig)
    yield api
    api.close()


@pytest.fixture
def namespace(control_plane, request):
    base = request.node.name.lower().replace("_", "-")
    base = "".join(ch for ch in base if ch.isalnum() or ch == "-").strip("-")[:40] or "test"
    name = create_namespace(control_plane, f"{base}-{uuid.uuid4().hex[:6]}")
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


from tests.cluster.operator_fixture import crd, ns, operator  # noqa: E402,F401 - the session's CRD; a module operator; a restricted namespace
