"""``python -m tandem ...`` as the tests run it: this interpreter, from the repository root.

`run_args` builds the arguments of `tandem run` (the job file, a private runs directory, the
job's name and ``--set`` overrides) so that every local test spells a run the same way;
`run_tandem` runs any command to completion, `start_tandem` starts one in the background.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from tests.conftest import REPO

MNIST_DDP = REPO / "jobs" / "mnist-ddp.yaml"


def tandem_argv(*args: str) -> list[str]:
    """The argv of ``python -m tandem ARGS`` in this interpreter (for pexpect and Popen)."""
    return [sys.executable, "-m", "tandem", *args]


def run_args(runs: Path, *sets: str, name: Optional[str] = None, job_file: Union[Path, str] = MNIST_DDP,
             metrics: bool = True, options: Sequence[str] = ()) -> list[str]:
    """The arguments of `tandem run JOB_FILE --runs-dir RUNS`: the job renamed to `name`,
    metrics turned off unless `metrics`, each of `sets` as a ``--set``, then `options`."""
    args = ["run", str(job_file), "--runs-dir", str(runs)]
    if name is not None:
        args += ["--set", f"metadata.name={name}"]
    if not metrics:
        args += ["--set", "metrics.enabled=false"]
    for override in sets:
        args += ["--set", override]
    return [*args, *options]


def run_tandem(*args: str, timeout: float = 240, **kwargs: Any) -> subprocess.CompletedProcess:
    """``python -m tandem ARGS`` to its end, stdout and stderr captured as text."""
    return subprocess.run(tandem_argv(*args), cwd=REPO, capture_output=True, text=True, timeout=timeout, **kwargs)


def start_tandem(*args: str, **kwargs: Any) -> subprocess.Popen:
    """``python -m tandem ARGS`` in the background; by default stdout and stderr go, merged,
    to one text pipe (keyword arguments are Popen's and override that)."""
    options: dict[str, Any] = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True, **kwargs}
    return subprocess.Popen(tandem_argv(*args), cwd=REPO, **options)


def machine_with_gpus(tmp_path: Path, count: int) -> dict[str, str]:
    """The environment of a `tandem run` on a machine with `count` GPUs and no CUDA_VISIBLE_DEVICES:
    a fake `nvidia-smi -L` first on PATH, which is how Tandem counts them (tandem/local/gpus.py)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    listing = "".join(f"GPU {i}: NVIDIA H100 80GB HBM3 (UUID: GPU-00000000-0000-0000-0000-00000000000{i})\\n"
                      for i in range(count))
    smi.write_text(f"#!/bin/sh\n[ \"$1\" = -L ] || exit 2\nprintf '{listing}'\n")
    smi.chmod(smi.stat().st_mode | stat.S_IXUSR)
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    return {**env, "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"}
