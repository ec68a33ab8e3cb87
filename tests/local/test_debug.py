"""`tandem run --debug`: pdb in rank 0 of a 2-worker run, driven through a real pty."""

from __future__ import annotations

import pytest
import yaml

from tests.conftest import REPO
from tests.support.commands import run_args, tandem_argv
from tests.support.processes import kill_job, wait_until_gone

pexpect = pytest.importorskip("pexpect")
pytestmark = pytest.mark.local


def test_breakpoint_in_rank_0_with_a_terminal(tmp_path):
    job = {
        "apiVersion": "tandem.dev/v1alpha1", "kind": "TrainingJob", "metadata": {"name": "debug-me"},
        "spec": {"framework": "pytorch", "strategy": "ddp", "workers": 2, "metrics": {"enabled": False},
                 "command": ["python", "tests/local/scripts/ddp_breakpoint.py"]},
    }
    path = tmp_path / "debug.yaml"
    path.write_text(yaml.safe_dump(job))
    argv = tandem_argv(*run_args(tmp_path / "runs", job_file=path, options=["--debug"]))
    child = pexpect.spawn(argv[0], argv[1:], cwd=str(REPO), encoding="utf-8", timeout=60, dimensions=(40, 200))
    try:
        child.expect(r"\(Pdb\)")
        child.sendline("p secret")
        child.expect("42")
        child.expect(r"\(Pdb\)")
        child.sendline("c")
        child.expect("rank 0 all-reduced 3")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0, child.before
        worker1 = next((tmp_path / "runs" / "debug-me").glob("*/logs/attempt-0/worker-1.log")).read_text()
        assert "rank 1 all-reduced 3" in worker1
        assert wait_until_gone("debug-me") == []
    finally:
        child.close(force=True)
        kill_job("debug-me")
