"""Exec a command that is SIGKILLed when its parent dies (Linux PR_SET_PDEATHSIG).

torchrun starts each worker in a new session and only stops them from its own signal
handlers; a SIGKILLed torchrun (which is what the launcher's death does to it) would leave
its workers running. torchrun therefore starts ``python -m tandem.launch.guard -- <worker>``,
which arms the parent-death signal and execs the worker: the setting survives exec, so the
chain launcher -> torchrun -> worker dies as a whole. Standard library only, cheap to start.

A training process that torchrun restarts in place is asked of the worker's warm interpreter
first, when the agent started one (launch/warm.py; the agent gives its socket to the processes it
starts after its first ones, launch/torchrun.py): it
forks the training process with torch already imported, which skips the new interpreter's
imports. The guard then stays in front of it as the process torchrun sees: it forwards
SIGTERM, SIGINT and SIGHUP to it and ends as it ended (the same exit code, or death by the same
signal), and its own death (SIGKILL from torchrun, or its parent-death signal) makes the server
SIGKILL it. Without an answering server, or refused, the guard execs the command as on a first start.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
from typing import Any, Iterator, Optional, Sequence

from .._sys.exitcodes import signalled
from .._sys.lifetime import die_with_parent
from ..contract import ENV_WARM_SOCKET

FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def outcome(status: int) -> int:
    """A wait status as Popen reports it: the exit code, or -N for a death by signal N."""
    return os.waitstatus_to_exitcode(status)


def end_as(returncode: int) -> int:
    """Exit as the forked training process did: its exit code, or death by its signal (so that
    torchrun reads exactly what it would have read of the process itself)."""
    if returncode >= 0:
        return returncode
    signum = -returncode
    sys.stdout.flush()
    sys.stderr.flush()
    if signum not in (signal.SIGKILL, signal.SIGSTOP):  # those two cannot be caught anyway
        signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    return signalled(signum)  # pragma: no cover - a signal that did not end us (SIGCHLD): say it as the shell would


def _lines(conn: socket.socket) -> Iterator[dict[str, Any]]:
    buffered = b""
    while True:
        while b"\n" in buffered:
            line, buffered = buffered.split(b"\n", 1)
            yield json.loads(line)
        more = conn.recv(4096)
        if not more:
            return
        buffered += more


def warm_run(socket_path: str, args: Sequence[str]) -> Optional[int]:
    """Have the warm server fork `args`; its return code (-N: signal N), or None to exec instead."""
    from .warm import REQUEST_TIMEOUT_S, Request, encode_request, python_target

    if python_target(args, sys.executable, os.environ.get("PATH")) is None:
        return None
    child: list[int] = []
    pending: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        if not child:
            pending.append(signum)
            return
        try:
            os.killpg(child[0], signum)  # its session's group, as torchrun's killpg of the process would
        except OSError:
            try:
                os.kill(child[0], signum)
            except OSError:
                pass

    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.settimeout(REQUEST_TIMEOUT_S)
        conn.connect(socket_path)
        payload = encode_request(Request(argv=list(args), cwd=os.getcwd(), env=dict(os.environ)))
        previous = {sig: signal.signal(sig, forward) for sig in FORWARDED_SIGNALS}
        sent = socket.send_fds(conn, [payload], [0, 1, 2])
        conn.sendall(payload[sent:])
        replies = _lines(conn)
        first = next(replies, None)
        if first is None or "pid" not in first:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            why = first.get("refused", "no answer") if first else "no answer"
            print(f"tandem.launch.guard: the warm interpreter did not fork it ({why}); starting Python", file=sys.stderr)
            for signum in pending:
                os.kill(os.getpid(), signum)
            return None
        conn.settimeout(None)
        child.append(int(first["pid"]))
        for signum in pending:
            forward(signum, None)
        for reply in replies:
            if "status" in reply:
                return outcome(int(reply["status"]))
        return -signal.SIGKILL  # the server died, and its child with it (its parent-death signal)
    except (OSError, ValueError):
        if child:  # the child runs, but its end cannot be known: it must not outlive us
            forward(signal.SIGKILL, None)
            return -signal.SIGKILL
        return None
    finally:
        conn.close()


def main(argv: Sequence[str]) -> int:
    """Arm the parent-death signal, then exec ``argv`` (a leading ``--`` is dropped), or on an
    in-place restart have the warm interpreter fork it."""
    args = list(argv[1:] if argv and argv[0] == "--" else argv)
    if not args:
        print("tandem.launch.guard: usage: python -m tandem.launch.guard -- <command...>", file=sys.stderr)
        return 2
    if not die_with_parent(os.getppid()):  # the parent died before the signal was armed
        return signalled(signal.SIGKILL)
    socket_path = os.environ.get(ENV_WARM_SOCKET, "")
    if socket_path:
        returncode = warm_run(socket_path, args)
        if returncode is not None:
            return end_as(returncode)
    try:
        os.execvp(args[0], args)
    except OSError as error:
        print(f"tandem.launch.guard: cannot run {args[0]!r}: {error}", file=sys.stderr)
        return 127
    return 0  # pragma: no cover - execvp does not return


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
