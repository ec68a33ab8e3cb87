"""Shared test fixtures and paths: the example jobs every tier uses, a job name per test.

The helpers themselves live in tests/support.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parent.parent
JOBS = REPO / "jobs"
EXAMPLES = sorted(JOBS.glob("*.yaml"))
#: Kubernetes version the rendered objects are validated against; the control plane in
#: tests/controlplane is built from the same minor release.
K8S_VERSION = "1.33.0"


#: The order the tiers run in when several are selected: those that need no build first, so
#: that on a cold machine the builds hack/test.sh starts in the background (control plane,
#: images, helm) overlap them instead of holding up the first cluster test (docs/e2e.md).
TIER_ORDER = ("unit", "local", "cluster", "e2e")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        try:
            tier = Path(str(item.fspath)).resolve().relative_to(REPO / "tests").parts[0]
        except ValueError:
            tier = ""
        return TIER_ORDER.index(tier) if tier in TIER_ORDER else len(TIER_ORDER)

    items.sort(key=rank)  # stable: each tier keeps pytest's order


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def job_name(tmp_path: Path) -> Iterator[str]:
    """A job name of this test's own. Afterwards every process of the job, and of the private
    Ray a `tandem run --runs-dir <tmp_path>/runs` started for it, is killed: a failing test
    leaves nothing running."""
    from tests.support.processes import kill, kill_job, ray_session_of

    name = f"t-{uuid.uuid4().hex[:6]}"
    yield name
    kill_job(name)
    kill(ray_session_of(tmp_path / "runs", name))
