"""The image cache's key and build context (tests/e2e/images.py), without building anything."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import REPO
from tests.e2e import images

IGNORE = """\
# comment
*
!pyproject.toml
!operator/
**/__pycache__
**/*.pyc
"""


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


@pytest.fixture
def fake_repo(tmp_path: Path) -> Path:
    """A repository with one image: its Dockerfile, .dockerignore and a few context files."""
    return _tree(tmp_path, {
        "images/x.Dockerfile": "FROM ${PYTHON_IMAGE}\nCOPY pyproject.toml ./\nCOPY operator/ operator/\n",
        "images/x.Dockerfile.dockerignore": IGNORE,
        "pyproject.toml": "[project]\n",
        "operator/tandem/__init__.py": "",
        "operator/tandem/__pycache__/__init__.cpython-311.pyc": "bytecode",
        "operator/tandem/cli.pyc": "bytecode",
        "bench/results.csv": "1,2\n",
        "README.md": "# readme\n",
    })


def _key(repo: Path, **overrides: str) -> str:
    args = {"base": "base-1", "builder": "buildah version 1.28.2"} | overrides
    return images.image_key(repo, "x", args["base"], args["builder"], {"PYTHON_IMAGE": "localhost/base"})


def test_context_follows_the_dockerignore(fake_repo):
    assert images.context_files(fake_repo, IGNORE) == ["operator/tandem/__init__.py", "pyproject.toml"]


@pytest.mark.parametrize("path, ignored", [
    ("bench/results.csv", True),          # `*` then nothing lets it back in
    ("operator", False),                  # `!operator/` re-includes the directory...
    ("operator/tandem/api.py", False),    # ...and all below it
    ("operator/tandem/__pycache__/a.pyc", True),
    ("__pycache__/top.pyc", True),        # `**/` spans zero directories too
    ("pyproject.toml.bak", True),         # a pattern matches the whole name, not a prefix
])
def test_dockerignore_rules(path, ignored):
    assert images.is_ignored(path, images.parse_ignore(IGNORE)) is ignored


def test_key_is_stable(fake_repo):
    assert _key(fake_repo) == _key(fake_repo)
    assert re.fullmatch(r"[0-9a-f]{16}", _key(fake_repo))


@pytest.mark.parametrize("change", [
    lambda r: (r / "images/x.Dockerfile").write_text("FROM ${PYTHON_IMAGE}\nRUN true\n"),
    lambda r: (r / "images/x.Dockerfile.dockerignore").write_text(IGNORE + "!README.md\n"),
    lambda r: (r / "operator/tandem/__init__.py").write_text("VERSION = 2\n"),
    lambda r: (r / "operator/tandem/new.py").write_text(""),
    lambda r: (r / "operator/tandem/__init__.py").rename(r / "operator/tandem/moved.py"),
    lambda r: (r / "operator/tandem/__init__.py").chmod(0o755),
    lambda r: (r / "pyproject.toml").write_text("[project]\nname = 'x'\n"),
], ids=["dockerfile", "dockerignore", "source-edit", "source-added", "source-renamed", "mode", "pyproject"])
def test_key_changes_with_every_input(fake_repo, change):
    before = _key(fake_repo)
    change(fake_repo)
    assert _key(fake_repo) != before


def test_key_changes_with_the_base_and_the_builder(fake_repo):
    assert _key(fake_repo, base="base-2") != _key(fake_repo)
    assert _key(fake_repo, builder="buildah version 1.33.7") != _key(fake_repo)


@pytest.mark.parametrize("change", [
    lambda r: (r / "bench/results.csv").write_text("3,4\n"),
    lambda r: (r / "README.md").write_text("# other\n"),
    lambda r: (r / "operator/tandem/__pycache__/__init__.cpython-311.pyc").write_text("other bytecode"),
    lambda r: shutil.rmtree(r / "operator/tandem/__pycache__"),
], ids=["outside-context", "not-re-included", "pycache", "pycache-gone"])
def test_key_ignores_what_the_build_never_sees(fake_repo, change):
    before = _key(fake_repo)
    change(fake_repo)
    assert _key(fake_repo) == before


def test_base_key_follows_its_recipe(monkeypatch):
    before = images.base_key("debootstrap 1.0.128")
    assert images.base_key("debootstrap 1.0.134") != before
    monkeypatch.setitem(images.BASE_RECIPE, "packages", [*images.BASE_RECIPE["packages"], "curl"])
    assert images.base_key("debootstrap 1.0.128") != before


@pytest.mark.parametrize("name", images.IMAGES)
def test_every_copied_source_is_in_the_real_context(name):
    """What the real Dockerfiles COPY passes their .dockerignore, so it is hashed into the key."""
    dockerfile = REPO / "images" / f"{name}.Dockerfile"
    context = images.context_files(REPO, dockerfile.with_name(dockerfile.name + ".dockerignore").read_text())
    sources = [src for line in dockerfile.read_text().splitlines() if line.startswith("COPY ")
               for src in line.split()[1:-1] if not src.startswith("--")]
    assert sources
    for src in sources:
        assert any(f == src or f.startswith(src.rstrip("/") + "/") for f in context), src
    assert not [f for f in context if "__pycache__" in f or f.endswith(".pyc")]


def test_archives_carry_the_names_the_cluster_asks_for():
    """Jobs and the chart name `tandem/<image>:<appVersion>`; the CRI looks that up fully qualified."""
    version = images.app_version(REPO)
    assert re.search(rf'^appVersion: "?{re.escape(version)}"?$', (REPO / "charts/tandem/Chart.yaml").read_text(), re.M)
    assert images.archive_ref("pytorch-worker", version) == f"docker.io/tandem/pytorch-worker:{version}"
    assert set(images.IMAGES) == {p.name.removesuffix(".Dockerfile") for p in (REPO / "images").glob("*.Dockerfile")}


def test_a_build_removes_only_the_same_images_stale_layouts(tmp_path, monkeypatch):
    """Layouts (directories) and the archives earlier versions made both go; nothing else does."""
    monkeypatch.setattr(images, "CACHE", tmp_path)
    names = ["operator-0123abcd.tar", "pytorch-worker-89abcdef.tar", ".operator-0123abcd.oci.partial",
             "operator-notes.txt", "pip.conf"]
    for name in names:
        (tmp_path / name).write_text("x")
    for name in ("operator-4567ef01.oci", "pytorch-worker-0011aabb.oci"):
        (tmp_path / name / "blobs").mkdir(parents=True)
        (tmp_path / name / "index.json").write_text("{}")
    images.remove_stale_layouts("operator")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["pytorch-worker-89abcdef.tar", "pytorch-worker-0011aabb.oci", ".operator-0123abcd.oci.partial",
         "operator-notes.txt", "pip.conf"])


def test_a_build_that_cannot_fit_is_refused_in_one_line_naming_need_and_free(tmp_path, monkeypatch):
    monkeypatch.setattr(images, "CACHE", tmp_path)
    free = 5 * 2**30
    monkeypatch.setattr(shutil, "disk_usage", lambda path: SimpleNamespace(total=free, used=0, free=free))
    images.check_room("operator")  # 3 x 0.8 + 1 GiB fits in 5
    with pytest.raises(images.NoRoom) as refused:
        images.check_room("pytorch-worker")
    message = str(refused.value)
    assert "\n" not in message
    assert "pytorch-worker needs about 19 GiB free" in message and "but 5.0 GiB is free" in message
    assert "TANDEM_IMAGE_CACHE" in message and "rm -rf /var/lib/tandem-e2e/containerd" in message


def test_a_killed_builds_leftovers_go_and_nothing_else(tmp_path, monkeypatch):
    """Temporary files, half-written outputs and build containers (FROM the base) go; finished
    layouts and test_images' containers (FROM a layout) stay."""
    monkeypatch.setattr(images, "CACHE", tmp_path)
    monkeypatch.setattr(images, "BUILD_TMP", tmp_path / "tmp")
    (tmp_path / "tmp" / "buildah123").mkdir(parents=True)
    (tmp_path / ".pytorch-worker-0011aabb.oci.partial" / "blobs").mkdir(parents=True)
    (tmp_path / ".operator-0123abcd.tar.partial").write_text("x")
    (tmp_path / "operator-4567ef01.oci").mkdir()
    calls = []

    def buildah(*args, capture=False, **kw):
        calls.append(args)
        if args[0] == "containers":
            return ("c1 localhost/tandem/base:bookworm-8c5f78ce1e8170cc\n"
                    "c2 localhost/tmp/tandem-layout-7/operator-4567ef01:latest\n")
        return ""
    monkeypatch.setattr(images, "_buildah", buildah)
    images.remove_build_leftovers()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["operator-4567ef01.oci", "tmp"]
    assert list((tmp_path / "tmp").iterdir()) == []
    assert ("rm", "c1") in calls and not any("c2" in call for call in calls)

