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


#: Seconds spent in each tier's setup, call and teardown, printed after the run: where the
#: suite's minutes go is what any cut to CI's time starts from.
TIER_SECONDS: dict[str, float] = {}


def tier_of(node_id: str) -> str:
    """The tier of a test id relative to the repository (`tests/<tier>/...`), or ""."""
    parts = node_id.split("::", 1)[0].split("/")
    return parts[1] if len(parts) > 2 and parts[0] == "tests" and parts[1] in TIER_ORDER else ""


#: The order when the suite runs as two streams (`pytest -n 2`, hack/test.sh's
#: whole-suite run): pytest-xdist hands the groups out in this order, each to the first stream
#: that runs short of work. The local tier (the longest group, training processes beside the
#: builds) goes to the first stream and the unit tier to the second, which then takes the e2e tier:
#: the unit tier fills the minutes that stream would otherwise spend waiting for the control
#: plane's build, which the e2e tier needs. The cluster tier's files fill both streams after them
#: (docs/e2e.md, "Two streams").
STREAMS_ORDER = ("local", "unit", "e2e", "cluster")


def work_group(node_id: str) -> str:
    """The pytest-xdist group of a test when the suite runs as two streams: tests of one group
    run in order in one stream. The local tier is one group, so that no two tests with training
    processes (torch, TensorFlow, Ray) share the two cores, and no local test's look at /proc
    meets another's processes; the unit tier, which starts no training process and scans no
    process but its own, is one beside it; the e2e tier is one, since its session holds the
    machine's one real node; each cluster-tier file is one, so that the two streams share that
    tier (each stream starts a control plane of its own, on its own ports)."""
    tier = tier_of(node_id)
    if tier == "local":
        return "host"
    if tier == "cluster":
        return "cluster-" + node_id.split("::", 1)[0].rsplit("/", 1)[-1].removesuffix(".py")
    return tier or "other"


def runs_as_streams(config: pytest.Config) -> bool:
    """True in a pytest-xdist worker: only workers collect (the controller does not), and
    xdist turns a worker's own `--dist` off, so the worker's input is what tells."""
    return hasattr(config, "workerinput")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    order = STREAMS_ORDER if runs_as_streams(config) else TIER_ORDER

    def rank(item: pytest.Item) -> int:
        tier = tier_of(item.nodeid)
        return order.index(tier) if tier else len(order)

    items.sort(key=rank)  # stable: each tier keeps pytest's order


def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """pytest-xdist's scope scheduling with work_group as the scope: each group goes whole to
    one stream, in collection order (with `--no-loadscope-reorder`). Not `xdist_group` marks:
    xdist reads those before a conftest's collection hook could add them."""
    from xdist.scheduler import LoadScopeScheduling

    class TierStreams(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_group(nodeid)

    return TierStreams(config, log)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    tier = tier_of(report.nodeid)
    if tier:
        TIER_SECONDS[tier] = TIER_SECONDS.get(tier, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter) -> None:
    if len(TIER_SECONDS) > 1:
        shown = ", ".join(f"{tier} {TIER_SECONDS[tier]:.0f} s" for tier in TIER_ORDER if tier in TIER_SECONDS)
        terminalreporter.write_line(f"tandem: time per tier (setup, call and teardown): {shown}")


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
