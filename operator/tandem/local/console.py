"""How worker output looks on a terminal, shared by `tandem run` and `tandem logs`.

One place for the `[worker i] ` prefix and its colour, so that a line looks the same whether it
is streamed live by the executor or read back later from a log file or a pod.
"""

from __future__ import annotations

from rich.text import Text

#: Worker i is drawn in WORKER_STYLES[i % len(WORKER_STYLES)].
WORKER_STYLES = ("cyan", "magenta", "green", "yellow", "blue", "red")


def worker_line(index: int, line: str) -> Text:
    """`[worker i] line`, the prefix in the worker's colour and the line as written (no markup)."""
    return Text(f"[worker {index}] ", style=WORKER_STYLES[index % len(WORKER_STYLES)]) + Text(line)
