"""torchrun, with its exit code made meaningful for Tandem.

Plain torchrun exits 1 for any worker failure and on a forwarded SIGTERM. Tandem reports the
failing worker's own exit code (the job's status names it) and 128+signal for a signal, so
this runs torchrun's ``main`` in-process and maps its two terminal exceptions.
"""

from __future__ import annotations

import signal
import sys
from typing import Sequence

from .._sys.exitcodes import exit_code, signalled


def main(argv: Sequence[str]) -> int:
    """Run torchrun with ``argv``; return the root-cause worker's exit code."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun_main

    try:
        torchrun_main(list(argv))
    except ChildFailedError as error:
        _rank, failure = error.get_first_failure()
        print(str(error), file=sys.stderr)
        code = exit_code(failure.exitcode)
        return code if code else 1
    except SignalException as error:
        print(f"tandem.launch.torchrun: stopped by {signal.Signals(error.sigval).name}", file=sys.stderr)
        return signalled(error.sigval)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
