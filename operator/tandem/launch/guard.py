"""Exec a command that is SIGKILLed when its parent dies (Linux PR_SET_PDEATHSIG).

torchrun starts each worker in a new session and only stops them from its own signal
handlers; a SIGKILLed torchrun (which is what the launcher's death does to it) would leave
its workers running. torchrun therefore starts ``python -m tandem.launch.guard -- <worker>``,
which arms the parent-death signal and execs the worker: the setting survives exec, so the
chain launcher -> torchrun -> worker dies as a whole. Standard library only, cheap to start.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Sequence

from .._sys.exitcodes import signalled
from .._sys.lifetime import die_with_parent


def main(argv: Sequence[str]) -> int:
    """Arm the parent-death signal, then exec ``argv`` (a leading ``--`` is dropped)."""
    args = list(argv[1:] if argv and argv[0] == "--" else argv)
    if not args:
        print("tandem.launch.guard: usage: python -m tandem.launch.guard -- <command...>", file=sys.stderr)
        return 2
    if not die_with_parent(os.getppid()):  # the parent died before the signal was armed
        return signalled(signal.SIGKILL)
    try:
        os.execvp(args[0], args)
    except OSError as error:
        print(f"tandem.launch.guard: cannot run {args[0]!r}: {error}", file=sys.stderr)
        return 127
    return 0  # pragma: no cover - execvp does not return


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
