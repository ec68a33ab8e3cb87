"""The warm interpreter's pure parts, in milliseconds: its request's encoding, which commands it
forks (this interpreter running a script or a module, nothing else), when a worker starts it,
and how the guard turns the forked process's wait status into its own end."""

from __future__ import annotations

import os
import signal
import sys

import pytest

from tandem._sys.exitcodes import exit_code
from tandem.launch.guard import outcome
from tandem.launch.warm import (
    MAX_REQUEST_BYTES,
    Request,
    Target,
    decode_request,
    encode_reply,
    encode_request,
    python_target,
    record_path,
    request_length,
    wanted,
)

PY = sys.executable


def test_a_request_round_trips_with_odd_bytes_in_its_environment():
    env = {"PATH": "/bin", "ODD": os.fsdecode(b"\xff\xfe"), "EMPTY": ""}
    request = Request(argv=[PY, "train.py", "--x", "é"], cwd="/tmp", env=env)
    data = encode_request(request)
    assert request_length(data) == len(data) - 4
    assert decode_request(data[4:]) == request
    assert os.fsencode(decode_request(data[4:]).env["ODD"]) == b"\xff\xfe"


@pytest.mark.parametrize("body", [b'{"argv": [], "cwd": "/", "env": {}}', b'{"argv": ["x"], "cwd": 1, "env": {}}',
                                  b'{"argv": ["x"], "cwd": "/", "env": {"A": 1}}', b'{"argv": "x", "cwd": "/", "env": {}}'])
def test_a_malformed_request_is_refused(body):
    with pytest.raises(ValueError):
        decode_request(body)


def test_an_oversized_request_is_refused():
    with pytest.raises(ValueError):
        request_length((MAX_REQUEST_BYTES + 1).to_bytes(4, "big"))


def test_replies_are_json_lines():
    assert encode_reply(pid=12) == b'{"pid": 12}\n'


def test_this_interpreter_running_a_script_or_a_module_is_forked():
    assert python_target([PY, "jobs/train.py", "--steps", "3"], PY, None) == Target(False, "jobs/train.py", ["--steps", "3"])
    assert python_target([PY, "-m", "pkg.train", "-v"], PY, None) == Target(True, "pkg.train", ["-v"])
    bindir = os.path.dirname(PY)
    assert python_target([os.path.basename(PY), "t.py"], PY, bindir) == Target(False, "t.py", [])


@pytest.mark.parametrize("argv", [
    [PY], [PY, "-u", "t.py"], [PY, "-X", "dev", "t.py"], [PY, "-c", "print(1)"], [PY, "-m"], [PY, ""],
    ["/usr/bin/env", "python", "t.py"], ["/no/such/python", "t.py"], ["bash", "-c", "python t.py"],
])
def test_anything_else_is_execd(argv):
    """An option changes the interpreter's own start, which a fork cannot redo; another program
    (even the same binary under another path, as a virtual environment's link) is not this one."""
    assert python_target(argv, PY, os.path.dirname(PY)) is None


def test_each_guard_has_its_record_beside_the_socket():
    assert record_path("/tmp/tandem-warm-x/warm.sock", 42) == "/tmp/tandem-warm-x/guard-42"


@pytest.mark.parametrize(("env", "expected"), [
    ({}, False), ({"TANDEM_IN_PLACE_RESTARTS": "0"}, False), ({"TANDEM_IN_PLACE_RESTARTS": "2"}, True),
    ({"TANDEM_IN_PLACE_RESTARTS": "2", "TANDEM_WARM": "0"}, False), ({"TANDEM_IN_PLACE_RESTARTS": "x"}, False),
])
def test_a_worker_starts_its_warm_interpreter_only_with_in_place_restarts(env, expected):
    assert wanted(env) is expected


def test_only_the_processes_started_after_the_first_ones_get_the_socket(monkeypatch):
    """torch's restart count in their environment counts the agent's own failures only: an agent
    restarting for a peer's failure starts its processes at 0, yet they are restarts."""
    from tandem.launch.torchrun import warm_after_first_start

    monkeypatch.delenv("TANDEM_WARM_SOCKET", raising=False)
    seen: list[str | None] = []

    class Agent:
        def _start_workers(self, group: object) -> None:
            seen.append(os.environ.get("TANDEM_WARM_SOCKET"))

    warm_after_first_start(Agent, "/tmp/d/warm.sock")
    Agent()._start_workers(None)
    Agent()._start_workers(None)
    assert seen == [None, "/tmp/d/warm.sock"]


@pytest.mark.parametrize(("status", "code"), [(0, 0), (7 << 8, 7), (signal.SIGKILL, -9), (signal.SIGTERM, -15),
                                              (signal.SIGSEGV | 0x80, -11)])
def test_the_guard_ends_as_the_forked_process_did(status, code):
    """Popen's return code, as torchrun would have read it of the process itself; the launcher's
    exit code follows from it as before (128+N for signal N)."""
    assert outcome(status) == code
    assert exit_code(outcome(status)) == (128 - code if code < 0 else code)


@pytest.mark.parametrize(("code", "expected"), [(None, 0), (0, 0), (3, 3), (256 + 4, 4), ("bad input", 1)])
def test_a_forked_script_exits_as_python_would(code, expected, capsys):
    """sys.exit's argument: None is 0, an int its low byte, anything else printed to stderr and 1."""
    from tandem.launch.warm import _system_exit_code

    assert _system_exit_code(code) == expected
    assert capsys.readouterr().err == ("bad input\n" if expected == 1 else "")
