"""Shared test helpers: paths, and the example jobs every tier uses."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
JOBS = REPO / "jobs"
EXAMPLES = sorted(JOBS.glob("*.yaml"))
#: Kubernetes version the rendered objects are validated against; the control plane in
#: tests/controlplane is built from the same minor release.
K8S_VERSION = "1.33.0"


@pytest.fixture
def repo() -> Path:
    return REPO
