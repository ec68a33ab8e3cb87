"""Run one command as the launcher's only child, and make its fate the launcher's.

- The child gets its own process group, so signals can be forwarded to it and everything it
  starts, and a terminal's Ctrl-C reaches the launcher first.
- PR_SET_PDEATHSIG=SIGKILL on the child: a SIGKILLed launcher (OOM killer, ``kill -9`` from a
  local executor) leaves nothing behind.
- SIGTERM/SIGINT/SIGHUP are forwarded to the child's group; the launcher exits with the
  child's exit code, 128+N when the child died of signal N (the shell and Kubernetes convention).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Callable, Mapping, Optional, Sequence

from .._sys.exitcodes import exit_code, signalled
from .._sys.lifetime import die_with_parent

FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _child_setup(launcher_pid: int) -> Callable[[], None]:
    """preexec_fn for the child: own process group, die with the launcher."""

    def setup() -> None:
        os.setpgid(0, 0)
        if not die_with_parent(launcher_pid):  # launcher already gone: do not start orphaned
            os._exit(signalled(signal.SIGKILL))

    return setup


def run(argv: Sequence[str], env: Mapping[str, str]) -> int:
    """Start ``argv`` with exactly ``env``, forward signals, wait, and return its exit code."""
    child: Optional[subprocess.Popen[bytes]] = None
    pending: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        if child is None:
            pending.append(signum)  # arrived while starting: delivered once the child exists
            return
        try:
            os.killpg(child.pid, signum)
        except ProcessLookupError:
            pass  # already gone; wait() below collects it

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED_SIGNALS}
    try:
        try:
            child = subprocess.Popen(list(argv), env=dict(env), preexec_fn=_child_setup(os.getpid()))
        except OSError as error:
            print(f"tandem.launch: cannot run {argv[0]!r}: {error}", file=sys.stderr)
            return 127
        for signum in pending:
            forward(signum, None)
        return exit_code(child.wait())
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
