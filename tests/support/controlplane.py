"""The one factory of started test control planes (tests/controlplane), for every cluster module.

The binaries are built once per session, after collection and outside any test (the cluster
conftest calls `build_once`), so that no per-test timeout counts a cold build of minutes.
`started_control_plane` then gives a running control plane, or skips the test where no Go
toolchain exists and nothing is cached, or fails it loudly when a build or start fails.
The session shares one; a module that restarts the apiserver or deletes nodes (chaos) starts
its own from the same binaries.
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from typing import Iterator, Optional

import pytest

from tests.conftest import REPO
from tests.controlplane.cluster import BuildError, ControlPlane, GoMissing, build
from tests.support.waiting import wait_for

CRD = REPO / "manifests" / "crd.yaml"

#: What `build_once` found: "bin_dir" (a Path) or "error" (a BuildError, GoMissing included).
_built: dict[str, object] = {}


def build_once() -> Optional[object]:
    """Build (or find cached) the control plane's binaries; returns the bin dir, None on failure
    (kept for `started_control_plane` to report)."""
    if not _built:
        try:
            _built["bin_dir"] = build()
        except BuildError as error:  # GoMissing included: the fixture decides
            _built["error"] = error
    return _built.get("bin_dir")


def _go_available() -> bool:
    return bool(shutil.which("go")) or os.access("/usr/local/go/bin/go", os.X_OK)


def _skip_or_fail(error: BuildError) -> None:
    if isinstance(error, GoMissing) or not _go_available():
        pytest.skip(f"cluster tests need Go to build the control plane: {error}")
    pytest.fail(f"building the control plane failed:\n{error}", pytrace=False)


@contextmanager
def started_control_plane() -> Iterator[ControlPlane]:
    """A started control plane, stopped on exit."""
    error = _built.get("error")
    if isinstance(error, BuildError):
        _skip_or_fail(error)
    plane = ControlPlane(bin_dir=_built.get("bin_dir"))
    try:
        plane.start()
    except BuildError as e:
        _skip_or_fail(e)
    try:
        yield plane
    finally:
        plane.stop()


def create_namespace(control_plane: ControlPlane, name: str, enforce: Optional[str] = None,
                     timeout: float = 30) -> str:
    """A namespace, enforcing the Pod Security Standard `enforce` if given, returned once its
    `default` ServiceAccount exists: the apiserver admits no pod in it before that."""
    control_plane.kubectl("create", "namespace", name)
    if enforce:
        control_plane.kubectl("label", "namespace", name, f"pod-security.kubernetes.io/enforce={enforce}",
                              "pod-security.kubernetes.io/enforce-version=latest")
    wait_for(f"ServiceAccount default in namespace {name}",
             lambda: control_plane.kubectl("get", "serviceaccount", "default", "-n", name, check=False).returncode == 0,
             timeout=timeout, interval=0.2)
    return name


def install_crd(control_plane: ControlPlane, timeout: str = "30s") -> None:
    """The TrainingJob CRD applied and established."""
    control_plane.kubectl("apply", "--server-side", "-f", str(CRD))
    control_plane.kubectl("wait", "--for=condition=established", "crd/trainingjobs.tandem.dev", f"--timeout={timeout}")
