"""`tandem run` gives its workers torchrun's thread default (tandem.local.threads), and a user's
OMP_NUM_THREADS wins: from the spec, or exported where `tandem run` starts."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.support.commands import run_args, run_tandem

pytestmark = pytest.mark.local

KERAS_MWMS = REPO / "jobs" / "keras-mwms.yaml"  # TensorFlow: its launcher imports no framework, so this is quick
PRINT_THREADS = "spec.command=" + json.dumps(["python", "-c", "import os; print('threads=' + os.environ['OMP_NUM_THREADS'])"])


def threads_seen(tmp_path: Path, job_name: str, *sets: str, env: dict[str, str] | None = None) -> list[str]:
    result = run_tandem(*run_args(tmp_path / "runs", PRINT_THREADS, "runPolicy.backoffLimit=0", *sets, name=job_name,
                                  job_file=KERAS_MWMS, metrics=False, options=["--workers", "2"]), env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return sorted(re.findall(r"\[worker \d\] threads=(\d+)", result.stderr + result.stdout))


def test_co_located_workers_get_one_thread_each(tmp_path: Path, job_name: str) -> None:
    shell = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    assert threads_seen(tmp_path, job_name, env=shell) == ["1", "1"]


def test_the_users_setting_wins(tmp_path: Path, job_name: str) -> None:
    spec_env = "spec.env=" + json.dumps([{"name": "OMP_NUM_THREADS", "value": "3"}])
    assert threads_seen(tmp_path, job_name, spec_env, env={**os.environ, "OMP_NUM_THREADS": "5"}) == ["3", "3"]
    assert threads_seen(tmp_path, job_name, env={**os.environ, "OMP_NUM_THREADS": "5"}) == ["5", "5"]
