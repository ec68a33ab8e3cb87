"""The background import's bookkeeping (tests/e2e/node_images.py), with stand-in children: what
a waiting test gets when an image is in, when its import failed, when the child died or is stuck,
and that stop() leaves no process behind. The real child (build, ctr) runs in the e2e tier."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.e2e.node_images import Imported, NodeImages
from tests.support.processes import wait_gone
from tests.support.waiting import wait_for


def child(tmp_path: Path, body: str) -> list[str]:
    script = tmp_path / "child.py"
    script.write_text("import json, os, subprocess, sys, time\n" + body)
    return [sys.executable, str(script)]


def line(**record: object) -> str:
    return f"print({json.dumps(json.dumps(record))}, flush=True)\n"


def test_each_image_is_settled_by_its_own_line(tmp_path):
    body = (line(image="a", layout="/cache/a-1.oci", refs=["docker.io/tandem/a:1"], seconds=2.0)
            + line(image="b", error="importing /cache/b-1.oci failed: ctr exited 1: no space left on device"))
    imports = NodeImages(tmp_path / "import.log", ("a", "b"), child(tmp_path, body)).start()
    try:
        assert imports.wait("a", timeout=60) == Imported(Path("/cache/a-1.oci"), ("docker.io/tandem/a:1",), 2.0)
        with pytest.raises(AssertionError, match=r"b could not be put into the node's containerd: .*no space left"):
            imports.wait("b", timeout=60)
    finally:
        imports.stop()


def test_a_child_that_ends_early_fails_the_images_it_did_not_import_with_its_words(tmp_path):
    body = (line(image="a", layout="/cache/a-1.oci", refs=["docker.io/tandem/a:1"], seconds=1.0)
            + "print('build-images: no room for b', file=sys.stderr)\nsys.exit(3)\n")
    imports = NodeImages(tmp_path / "import.log", ("a", "b"), child(tmp_path, body)).start()
    try:
        assert imports.wait("a", timeout=60).refs == ("docker.io/tandem/a:1",)
        with pytest.raises(AssertionError, match=r"(?s)exited 3 before importing b:.*no room for b"):
            imports.wait("b", timeout=60)
    finally:
        imports.stop()


def test_a_stuck_child_fails_the_waiter_and_stop_kills_all_it_runs(tmp_path):
    """The child hangs with a process of its own (as ctr under a build would): the waiter
    gets an error naming the log, and stop() leaves neither process running."""
    pid_file = tmp_path / "grandchild.pid"
    body = (f"p = subprocess.Popen(['sleep', '600'])\nopen({str(pid_file)!r}, 'w').write(str(p.pid))\n"
            "print('importing a', file=sys.stderr, flush=True)\ntime.sleep(600)\n")
    imports = NodeImages(tmp_path / "import.log", ("a",), child(tmp_path, body)).start()
    try:
        grandchild = int(wait_for("the child's own process", lambda: pid_file.exists() and pid_file.read_text()))
        with pytest.raises(AssertionError, match=r"(?s)importing a into the node's containerd has not ended"):
            imports.wait("a", timeout=0.1)
    finally:
        imports.stop()
    assert imports._process is not None and imports._process.poll() is not None
    assert wait_gone([grandchild]) == []
    with pytest.raises(AssertionError, match=r"exited -9 before importing a"):
        imports.wait("a", timeout=60)  # settled by the kill: a later waiter does not hang either
