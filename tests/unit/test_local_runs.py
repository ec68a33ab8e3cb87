"""Local run state on disk: private to the user, and a pid file that can never point the CLI at
an unrelated process."""

from __future__ import annotations

import stat
import subprocess
import sys

import pytest

from tandem._sys import proctree
from tandem.local.executor import new_run_dir
from tandem.local.figures_service import _read_pids, _write_pids


def test_runs_dir_is_created_private(tmp_path):
    run_dir = new_run_dir(tmp_path / ".tandem" / "runs", "demo", resume=False)
    for directory in (tmp_path / ".tandem", tmp_path / ".tandem" / "runs", run_dir.parent, run_dir):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory


@pytest.fixture
def bystander():
    """A live process that has nothing to do with any run."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield process.pid
    process.kill()
    process.wait()


def test_pid_file_names_each_process_by_pid_and_start_time(tmp_path, bystander):
    path = tmp_path / "ray-session.pids"
    _write_pids(path, [bystander])
    assert _read_pids(path) == [bystander]


def test_a_stale_pid_file_never_names_an_unrelated_process(tmp_path, bystander):
    """The helper died and its pids were reused: the file's entries must not match the bystander."""
    path = tmp_path / "ray-session.pids"
    started = proctree.start_time(bystander)
    assert started is not None
    path.write_text(f"{bystander} {started + 1}\n")  # the process once recorded under this pid
    assert _read_pids(path) == []
    path.write_text(f"{bystander}\n")  # a pid without its start time cannot be verified
    assert _read_pids(path) == []
