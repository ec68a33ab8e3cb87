"""A worker enters its run's private network namespace by the namespace's inode, not by the holder's
pid alone: a holder that died, or whose pid now belongs to a process on the host's network, makes
the worker refuse to start, saying why, instead of running unnoticed on the host's network.

These run `python -m tandem._sys.netns` against this test's own process (whose namespace is the
host's here), so they create no namespace and take milliseconds of work."""

from __future__ import annotations

import os
import subprocess
import sys

from tandem._sys.netns import PrivateNetwork


def _enter(target: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tandem._sys.netns", target, "--", "true"],
                          capture_output=True, text=True, timeout=60)


def test_a_pid_in_another_namespace_than_the_runs_is_refused():
    # This pid is alive, but its network namespace is not the one the run made (the inode differs):
    # what a reused pid of a dead holder looks like.
    wrong = os.stat("/proc/self/ns/net").st_ino + 1
    done = _enter(f"{os.getpid()}:{wrong}")
    assert done.returncode == 126, done.stderr
    assert f"the run's network namespace is gone: its holder (pid {os.getpid()}) has ended" in done.stderr


def test_a_holder_that_has_ended_is_refused():
    ended = subprocess.Popen(["true"])
    ended.wait()
    done = _enter(f"{ended.pid}:1")
    assert done.returncode == 126 and "its holder" in done.stderr and "has ended" in done.stderr, done.stderr


def test_the_runs_own_namespace_is_entered():
    same = os.stat("/proc/self/ns/net").st_ino
    assert _enter(f"{os.getpid()}:{same}").returncode == 0


def test_the_old_form_without_an_inode_is_refused_with_the_usage():
    done = _enter(str(os.getpid()))
    assert done.returncode == 2 and "<holder pid>:<net inode>" in done.stderr


def test_wrap_names_the_holder_and_its_namespace():
    network = PrivateNetwork()
    assert network.wrap(["python", "x.py"]) == ["python", "x.py"]  # no namespace: unchanged
    network.process, network.net_inode = subprocess.Popen(["sleep", "30"]), 4026532999
    try:
        wrapped = network.wrap(["python", "x.py"])
    finally:
        network.process.kill()
        network.process.wait()
    assert wrapped[1:] == ["-m", "tandem._sys.netns", f"{network.process.pid}:4026532999", "--", "python", "x.py"]


def test_inside_a_real_namespace_loopback_mapped_to_ipv6_has_a_name_and_the_working_directory_stays(tmp_path):
    """torch's TCPStore sees a peer on 127.0.0.1 as ::ffff:127.0.0.1 and names it: inside the run's
    namespace that form is in /etc/hosts (no DNS is reachable there), and only there."""
    import pytest

    network = PrivateNetwork()
    if not network.start():
        pytest.skip(f"no private network namespace on this system: {network.reason}")
    probe = ("import os, socket; print(socket.getnameinfo(('::ffff:127.0.0.1', 80, 0, 0), 0)[0]); "
             "print(os.getcwd())")
    try:
        done = subprocess.run(network.wrap([sys.executable, "-c", probe]), capture_output=True, text=True,
                              timeout=60, cwd=tmp_path)
    finally:
        network.stop()
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["localhost", str(tmp_path)]
    with open("/etc/hosts") as hosts:
        assert "::ffff:127.0.0.1" not in hosts.read()  # the host's own file is untouched
