"""Exec a command that is SIGKILLed when its parent dies (Linux PR_SET_PDEATHSIG).

torchrun starts each worker in a new session and only stops them from its own signal
handlers; a SIGKILLed torchrun (which is what the launcher's death does to it) would leave
its workers running. torchrun therefore starts ``python -m tandem.launch.guard -- <worker>``,
which arms the parent-death signal and execs the worker: the setting survives exec, so the
chain launcher -> torchrun -> worker dies as a whole. Standard library only, cheap to start.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
from typing import Optional, Sequence

_PR_SET_PDEATHSIG = 1
_libc: Optional[ctypes.CDLL]
try:  # loaded here, before any fork, so preexec_fn never has to dlopen in a forked child
    _libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
except OSError:  # pragma: no cover - not Linux/glibc
    _libc = None


def set_parent_death_signal(sig: int = signal.SIGKILL) -> bool:
    """Ask the kernel to send ``sig`` to this process when its parent dies. False if unsupported."""
    if _libc is None or not sys.platform.startswith("linux"):
        return False
    return _libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0


def main(argv: Sequence[str]) -> int:
    """Arm the parent-death signal, then exec ``argv`` (a leading ``--`` is dropped)."""
    args = list(argv[1:] if argv and argv[0] == "--" else argv)
    if not args:
        print("tandem.launch.guard: usage: python -m tandem.launch.guard -- <command...>", file=sys.stderr)
        return 2
    parent = os.getppid()
    set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the signal was armed
        return 128 + signal.SIGKILL
    try:
        os.execvp(args[0], args)
    except OSError as error:
        print(f"tandem.launch.guard: cannot run {args[0]!r}: {error}", file=sys.stderr)
        return 127
    return 0  # pragma: no cover - execvp does not return


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
