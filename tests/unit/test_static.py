"""The checks no import, style slip or type error gets past: the layers of docs/architecture.md
(import-linter, configured in pyproject.toml), no import cycle, ruff, and mypy --strict.

They run the real tools on the real tree, so a wrong import fails the README's test command.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import grimp
from mypy.version import __version__ as MYPY_VERSION

from tests.conftest import REPO

#: What the foundation and the in-worker launcher may import besides the standard library, and the
#: figures' modules the shipper loads in every training image (the record, the wire, the tokens).
STDLIB_ONLY = {"tandem.contract": set(), "tandem._sys": set(), "tandem.errors": set(), "tandem.frameworks": set(),
               "tandem.launch": {"torch"},
               "tandem.figures.record": set(), "tandem.figures.wire": set(), "tandem.figures.token": set()}


def _tool(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`argv` run from the repository root with this clone's source first on the path."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "operator"), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def _graph() -> grimp.ImportGraph:
    sys.path.insert(0, str(REPO / "operator"))  # already first under hack/test.sh; here for a bare pytest
    try:
        return grimp.build_graph("tandem", include_external_packages=True, cache_dir=None)
    finally:
        sys.path.remove(str(REPO / "operator"))


def test_imports_keep_the_layers() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = _tool(str(lint_imports), "--no-cache")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_foundation_and_launch_import_only_the_standard_library() -> None:
    """import-linter forbids the packages we know of; this also catches one added tomorrow."""
    graph = _graph()
    for package, allowed in STDLIB_ONLY.items():
        for module in graph.find_descendants(package) | {package}:
            outside = {name.split(".")[0] for name in graph.find_modules_directly_imported_by(module)
                       if not name.startswith("tandem")}
            assert outside <= set(sys.stdlib_module_names) | allowed, (module, outside - set(sys.stdlib_module_names))


def test_no_import_cycle() -> None:
    """Each direct import a -> b, and no way back from b to a."""
    graph = _graph()
    cycles = [
        (importer, imported, graph.find_shortest_chain(importer=imported, imported=importer))
        for importer in sorted(m for m in graph.modules if m.startswith("tandem"))
        for imported in graph.find_modules_directly_imported_by(importer)
        if imported.startswith("tandem") and graph.find_shortest_chain(importer=imported, imported=importer)
    ]
    assert cycles == []


def test_ruff() -> None:
    result = _tool(sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise",
                   "operator", "tests", "benchmarks")
    assert result.returncode == 0, result.stdout + result.stderr


def mypy_cache_dir() -> Path:
    """Under the user's cache, not in the clone: CI checks out a fresh clone each run, and a cache in
    it is always cold (a minute of mypy re-reading torch's and TensorFlow's stubs). One directory per
    Python and mypy version, as the cache holds no other; mypy checks each cached module against its
    file (size, then the hash when the mtime or path differs, as in every new clone), so a cache
    another clone wrote serves only what has not changed."""
    user_cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    root = Path(os.environ.get("TANDEM_CACHE") or user_cache / "tandem")  # as hack/test.sh's
    return root / f"mypy-py{sys.version_info.major}.{sys.version_info.minor}-{MYPY_VERSION}"


def test_mypy_strict() -> None:
    """Settings in pyproject.toml ([tool.mypy]: strict on operator/tandem; over tests/ only that what
    they call and read exists). The first run on a machine takes minutes (torch's and TensorFlow's
    stubs); later runs, from any clone, read mypy_cache_dir()."""
    result = _tool(sys.executable, "-m", "mypy", "--cache-dir", str(mypy_cache_dir()), timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
