"""Run a Python training script with every line it prints stamped with the wall-clock time.

    python benchmarks/stamp.py SCRIPT [ARGS...]

Each complete line written to stdout becomes ``@@T <unix time, 6 decimals> <line>``, stamped
at the moment the script writes it (not when a launcher relays it), so the benchmark that
parses the output sees when a step really finished, whatever launcher sits in between. The
script runs in this process (runpy, as ``__main__``), so the stamping costs one function call
per line and nothing per step. Imports nothing from Tandem: B1 runs the same wrapper under
every launcher it compares.
"""

from __future__ import annotations

import io
import runpy
import sys
import time


class StampedLines(io.TextIOBase):
    def __init__(self, out: io.TextIOBase):
        self._out = out
        self._partial = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        data = self._partial + text
        *lines, self._partial = data.split("\n")
        if lines:
            now = time.time()
            self._out.write("".join(f"@@T {now:.6f} {line}\n" for line in lines))
            self._out.flush()
        return len(text)

    def flush(self) -> None:
        self._out.flush()

    def fileno(self) -> int:
        return self._out.fileno()

    def isatty(self) -> bool:
        return False


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: python benchmarks/stamp.py SCRIPT [ARGS...]")
    script = sys.argv[1]
    sys.argv = sys.argv[1:]
    sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.abspath(script)))
    sys.stdout = StampedLines(sys.stdout)
    try:
        runpy.run_path(script, run_name="__main__")
    finally:
        if sys.stdout._partial:  # type: ignore[attr-defined]
            sys.stdout.write("\n")


if __name__ == "__main__":
    main()
