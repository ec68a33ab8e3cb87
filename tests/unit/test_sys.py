"""tandem._sys against the real kernel: /proc trees, the parent-death signal, the subreaper,
free ports and exit codes. Each test starts at most a few short-lived processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid

from tandem._sys import proctree
from tandem._sys.exitcodes import exit_code, signalled
from tandem._sys.ports import free_port, free_ports
from tests.conftest import REPO

PYTHON_ENV = {**os.environ, "PYTHONPATH": str(REPO / "operator")}


def python(code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], env=PYTHON_ENV, stdout=subprocess.PIPE, text=True)


def test_exit_codes_follow_the_shell():
    assert exit_code(0) == 0 and exit_code(3) == 3
    assert exit_code(-signal.SIGKILL) == 137 and exit_code(-signal.SIGTERM) == 143
    assert signalled(signal.SIGINT) == 130


def test_free_ports_are_distinct_and_bindable():
    ports = free_ports(8)
    assert len(set(ports)) == 8
    for port in [*ports, free_port()]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


def test_a_tree_is_found_by_parent_and_by_environment_and_stopped():
    tag = uuid.uuid4().hex
    # sh stays the parent of a sleep: a tree of two below us, both carrying the tag.
    root = subprocess.Popen(["sh", "-c", "sleep 30 & wait"], env={**os.environ, "SYS_TEST_TAG": tag})
    try:
        deadline = time.monotonic() + 10
        while len(proctree.descendants(root.pid)) < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        (sleeper,) = proctree.descendants(root.pid)
        assert root.pid in proctree.descendants(os.getpid())
        assert proctree.parents()[sleeper] == root.pid
        assert proctree.cmdline(sleeper)[:2] == [b"sleep", b"30"]
        assert sorted(proctree.live_with_env("SYS_TEST_TAG", tag)) == sorted([root.pid, sleeper])
        assert proctree.live_with_env("SYS_TEST_TAG", tag[:8], prefix=True) != []
        assert proctree.carrying_env([os.getpid(), sleeper], "SYS_TEST_TAG", tag) == [sleeper]
        proctree.stop_trees([root.pid], grace=2.0)
        root.wait(5)
        deadline = time.monotonic() + 5
        while proctree.alive(sleeper) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not proctree.alive(sleeper)
        assert proctree.cmdline(root.pid) == [] and proctree.environ(root.pid) == []
    finally:
        root.kill()
        root.wait()


def test_a_zombie_is_not_alive():
    child = subprocess.Popen(["sleep", "30"])
    assert proctree.alive(child.pid)
    os.kill(child.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while proctree.alive(child.pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not proctree.alive(child.pid)  # dead, though not reaped yet
    assert child.wait(5) == -signal.SIGKILL


def test_a_child_dies_with_its_parent():
    parent = python(
        "import subprocess, sys, time\n"
        "from tandem._sys.lifetime import die_with_parent\n"
        "child = subprocess.Popen(['sleep', '30'], preexec_fn=die_with_parent)\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(30)\n"
    )
    try:
        child = int(parent.stdout.readline())
        assert proctree.alive(child)
        parent.kill()  # no chance to clean up: only the kernel can stop the child now
        parent.wait(5)
        deadline = time.monotonic() + 5
        while proctree.alive(child) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not proctree.alive(child)
    finally:
        parent.kill()


def test_die_with_parent_reports_a_parent_already_gone():
    checker = python(
        "import os\n"
        "from tandem._sys.lifetime import die_with_parent\n"
        "print(die_with_parent(os.getppid()), die_with_parent(os.getppid() + 1), flush=True)\n"
    )
    out, _ = checker.communicate(timeout=30)
    assert out.split() == ["True", "False"]


def test_a_subreaper_keeps_its_orphans_below_it():
    reaper = python(
        "import os, subprocess\n"
        "from tandem._sys import proctree\n"
        "from tandem._sys.lifetime import become_subreaper\n"
        "assert become_subreaper()\n"
        "out = subprocess.run(['sh', '-c', 'sleep 30 >/dev/null 2>&1 & echo $!'], capture_output=True, text=True).stdout\n"
        "orphan = int(out)\n"  # its parent sh has exited
        "print(proctree.parents()[orphan] == os.getpid(), orphan in proctree.descendants(os.getpid()), flush=True)\n"
        "proctree.stop_trees([orphan], grace=2.0)\n"
        "proctree.reap_orphans(set())\n"
    )
    out, _ = reaper.communicate(timeout=30)
    assert out.split() == ["True", "True"]


def test_malloc_arenas_are_limited_unless_the_environment_says(monkeypatch):
    """glibc (this test machine's C library) takes the limit; MALLOC_ARENA_MAX in the
    environment is left to decide."""
    from tandem._sys.malloc import limit_arenas

    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert limit_arenas(2) is True
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_arenas(2) is False
