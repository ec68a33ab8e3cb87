"""Fixtures for tests against the real control plane (tests/controlplane).

- ``control_plane`` (session): a started :class:`tests.controlplane.cluster.ControlPlane`;
  built on first use (cached under ~/.cache/tandem/controlplane), stopped at the end.
  Skips only when no Go toolchain exists *and* nothing is cached; a failing build or
  start fails the tests loudly.
- ``namespace`` (function): a fresh namespace, deleted afterwards.
- ``k8s_api`` (session): a ``kubernetes.client.ApiClient`` for the control plane.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
import uuid
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parents[2]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from tests.controlplane.cluster import BuildError, ControlPlane, GoMissing, build  # noqa: E402

# The build (minutes on a cold machine) runs once collection is done and only if a selected
# test uses the control plane: outside any test, so that no per-test timeout counts it.
_built: dict[str, object] = {}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "cluster: needs the real control plane built from upstream Kubernetes"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.cluster)


def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.option.collectonly:
        return
    if not any("control_plane" in getattr(item, "fixturenames", ()) for item in session.items):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(
            "tandem: building the test control plane if not cached "
            "(tests/controlplane/build.sh; cold: 10-12 CPU-minutes, about 6 minutes on an idle 2-core machine)"
        )
    t0 = time.monotonic()
    try:
        _built["bin_dir"] = build()
    except BuildError as e:  # GoMissing included: the fixture decides
        _built["error"] = e
    if reporter is not None and "bin_dir" in _built:
        reporter.write_line(f"tandem: control plane binaries in {_built['bin_dir']} "
                            f"({time.monotonic() - t0:.0f}s)")


def _go_available() -> bool:
    return bool(shutil.which("go")) or os.access("/usr/local/go/bin/go", os.X_OK)


@pytest.fixture(scope="session")
def control_plane():
    error = _built.get("error")
    if isinstance(error, GoMissing):
        pytest.skip(f"cluster tests need Go to build the control plane: {error}")
    if isinstance(error, BuildError):
        pytest.fail(f"building the control plane failed:\n{error}", pytrace=False)
    cp = ControlPlane(bin_dir=_built.get("bin_dir"))
    try:
        cp.start()
    except GoMissing as e:
        pytest.skip(f"cluster tests need Go to build the control plane: {e}")
    except BuildError as e:
        if not _go_available():  # pragma: no cover - GoMissing covers this
            pytest.skip(f"cluster tests need Go: {e}")
        pytest.fail(f"building the control plane failed:\n{e}", pytrace=False)
    try:
        yield cp
    finally:
        cp.stop()


@pytest.fixture(scope="session")
def k8s_api(control_plane):
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=control_plane.kubeconfig)
    yield api
    api.close()


@pytest.fixture
def namespace(control_plane, request):
    base = request.node.name.lower().replace("_", "-")
    base = "".join(ch for ch in base if ch.isalnum() or ch == "-").strip("-")[:40] or "test"
    name = f"{base}-{uuid.uuid4().hex[:6]}"
    control_plane.kubectl("create", "namespace", name)
    # Pods are admitted only once the controller-manager made the `default` ServiceAccount.
    deadline = time.monotonic() + 30
    while control_plane.kubectl("get", "serviceaccount", "default", "-n", name,
                                check=False).returncode != 0:
        if time.monotonic() > deadline:
            pytest.fail(f"ServiceAccount default never appeared in namespace {name}")
        time.sleep(0.2)
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


from tests.cluster.operator_fixture import crd  # noqa: E402,F401 - the session's CRD, for every cluster test
