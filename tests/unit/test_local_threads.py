"""The local runs' thread policy (tandem.local.threads): torchrun's, so B1 compares like with like."""

from __future__ import annotations

from pathlib import Path

import pytest

from tandem.api import TrainingJob
from tandem.local.threads import local_omp_threads, local_thread_env, physical_cores
from tests.support.specs import spec


@pytest.mark.parametrize(("processes", "cores", "threads"), [
    (1, 16, 16),  # alone: every core, as torch (and torchrun with one process) would take
    (1, 1, 1),
    (1, 0, 1),    # never 0, which OpenMP would read as "unset"
    (2, 16, 1),   # co-located: one each, as torchrun --standalone --nproc-per-node=2 sets
    (2, 2, 1),
    (8, 2, 1),
])
def test_threads_per_process(processes: int, cores: int, threads: int) -> None:
    assert local_omp_threads(processes, cores) == threads


def job(**changes: object) -> TrainingJob:
    return TrainingJob.from_dict(spec(**changes))


def test_one_worker_with_one_process_gets_the_host() -> None:
    assert local_thread_env(job(workers=1), {}, host_cores=16) == {"OMP_NUM_THREADS": "16"}


def test_every_process_on_the_host_counts() -> None:
    assert local_thread_env(job(workers=2), {}, host_cores=16) == {"OMP_NUM_THREADS": "1"}
    assert local_thread_env(job(workers=1, procsPerWorker=4), {}, host_cores=16) == {"OMP_NUM_THREADS": "1"}


def test_the_spec_wins_and_is_left_to_the_rendered_env() -> None:
    pinned = job(workers=2, env=[{"name": "OMP_NUM_THREADS", "value": "8"}])
    assert local_thread_env(pinned, {"OMP_NUM_THREADS": "3"}, host_cores=16) == {}


def test_a_value_exported_where_tandem_runs_is_passed_on() -> None:
    assert local_thread_env(job(workers=2), {"OMP_NUM_THREADS": "8"}, host_cores=16) == {"OMP_NUM_THREADS": "8"}
    assert local_thread_env(job(workers=2), {"OMP_NUM_THREADS": " "}, host_cores=16) == {"OMP_NUM_THREADS": "1"}


def topology(root: Path, cores: dict[int, tuple[int, int]]) -> Path:
    """A fake /sys/devices/system/cpu: cpu number -> (package, core)."""
    for cpu, (package, core) in cores.items():
        directory = root / f"cpu{cpu}" / "topology"
        directory.mkdir(parents=True)
        (directory / "physical_package_id").write_text(f"{package}\n")
        (directory / "core_id").write_text(f"{core}\n")
    return root


def test_smt_siblings_count_once(tmp_path: Path) -> None:
    smt = topology(tmp_path, {0: (0, 0), 1: (0, 1), 2: (0, 0), 3: (0, 1), 4: (1, 0), 5: (1, 0)})
    assert physical_cores(range(6), smt) == 3
    assert physical_cores([0, 2], smt) == 1  # the affinity decides which cores count


def test_unreadable_topology_counts_every_cpu(tmp_path: Path) -> None:
    assert physical_cores([0, 1, 7], tmp_path) == 3
    assert physical_cores([], tmp_path) == 1
