"""``python -m tandem.launch [--print] -- <command...>``: what every Tandem worker runs.

Reads the TANDEM_* contract from the environment, derives the framework's launch (see env.py),
prints one line saying what it runs, and runs it (see process.py). Exit codes: the command's
own; 2 for a bad contract or usage. ``--print`` shows the argv and added env as JSON instead.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Optional, Sequence

from ..errors import ContractError
from . import process
from .env import build_launch
from .resolve import RESOLVE_TIMEOUT_S, wait_for_name

USAGE = "usage: python -m tandem.launch [--print] -- <command...>"


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point; returns the exit code instead of exiting, for tests."""
    args = list(sys.argv[1:] if argv is None else argv)
    dry_run = False
    while args and args[0] != "--" and args[0].startswith("-"):
        option = args.pop(0)
        if option == "--print":
            dry_run = True
        elif option in ("-h", "--help"):
            print(USAGE)
            return 0
        else:
            print(f"tandem.launch: unknown option {option!r}; {USAGE}", file=sys.stderr)
            return 2
    command = args[1:] if args[:1] == ["--"] else args
    try:
        launch = build_launch(os.environ, command, sys.executable)
    except ContractError as error:
        print(f"tandem.launch: {error}", file=sys.stderr)
        return error.exit_code
    if dry_run:
        print(json.dumps({"argv": list(launch.argv), "env": launch.env}, indent=2))
        return 0
    print(f"tandem.launch: {launch.summary}", file=sys.stderr, flush=True)
    if launch.resolve_first and not wait_for_name(launch.resolve_first):
        print(f"tandem.launch: the coordinator {launch.resolve_first} did not resolve within "
              f"{RESOLVE_TIMEOUT_S:.0f}s; is worker 0 running, with its headless Service?", file=sys.stderr)
        return 1
    if launch.in_place:
        os.execvpe(launch.argv[0], list(launch.argv), {**os.environ, **launch.env})
    # TODO(metrics): start the tandem.metrics reporter here (TANDEM_METRICS_ADDRESS) once it exists.
    return process.run(launch.argv, {**os.environ, **launch.env})


if __name__ == "__main__":
    sys.exit(main())
