"""The helm binary for chart tests: built once from the Go module proxy by hack/install-helm.sh.

`helm_binary()` returns its path, skips the calling test when no Go toolchain exists (the only
reason to skip), and fails the test when the build fails.
"""

from __future__ import annotations

import shutil
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Callable

import pytest

from tests.conftest import REPO

INSTALL_HELM = REPO / "hack" / "install-helm.sh"
CHART = REPO / "charts" / "tandem"
NO_GO = 3  # install-helm.sh's exit status when there is no Go toolchain


@lru_cache(maxsize=1)
def _build() -> tuple[int, str, str]:
    result = subprocess.run(["bash", str(INSTALL_HELM)], capture_output=True, text=True, timeout=1800)
    return result.returncode, result.stdout.strip(), result.stderr


def helm_binary() -> str:
    code, out, err = _build()
    if code == NO_GO:
        pytest.skip(f"helm is built from source and needs Go: {err.strip()}")
    if code != 0:
        pytest.fail(f"hack/install-helm.sh failed (exit {code}):\n{err[-4000:]}", pytrace=False)
    return out.splitlines()[-1]


def helm_runner(kubeconfig: str, home: Path, timeout: float) -> Callable[..., subprocess.CompletedProcess]:
    """run(*args, check=True): helm against `kubeconfig`, with its cache, config and data under
    `home` (never the user's), failing the test with helm's output when `check` and it fails."""
    binary = helm_binary()
    env = {"HELM_CACHE_HOME": str(home / "cache"), "HELM_CONFIG_HOME": str(home / "config"),
           "HELM_DATA_HOME": str(home / "data"), "PATH": "/usr/bin:/bin"}

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([binary, "--kubeconfig", kubeconfig, *args], env=env,
                                capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    return run


def kubectl_binary() -> str | None:
    """A kubectl with kustomize built in: PATH, else the control plane's cached one."""
    found = shutil.which("kubectl")
    if found:
        return found
    cached = sorted(Path.home().glob(".cache/tandem/controlplane/*/bin/kubectl"))
    return str(cached[-1]) if cached else None
