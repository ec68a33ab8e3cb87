"""Printer columns read by name: `kubectl get tj` (and `tandem list`) as rows of {COLUMN: value}.

A test that picks a column by position breaks (or, worse, reads the wrong figure) when a column
is added; by name it reads the column it means, wherever it stands. Cells are cut at the header's
column starts, not split at spaces, so an empty cell (no figures yet) stays empty.
"""

from __future__ import annotations

import re
from typing import Any


def table_rows(text: str) -> list[dict[str, str]]:
    """The rows of a kubectl-style table (a header line of single-word column names, then rows
    aligned under it) as {column name: cell}; a cell is "" where the row has nothing."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return []
    starts = [(match.group(), match.start()) for match in re.finditer(r"\S+", lines[0])]
    rows = []
    for line in lines[1:]:
        cells = {}
        for position, (name, start) in enumerate(starts):
            end = starts[position + 1][1] if position + 1 < len(starts) else len(line)
            cells[name] = line[start:end].strip()
        rows.append(cells)
    return rows


def printed(control_plane: Any, namespace: str, name: str, *flags: str) -> dict[str, str]:
    """The columns `kubectl get tj <name>` prints for one job, by name (`-o wide` in `flags` adds
    the priority-1 columns)."""
    (row,) = table_rows(control_plane.kubectl("get", "tj", name, "-n", namespace, *flags).stdout)
    return row


def headers(text: str) -> list[str]:
    """The column names of a kubectl-style table, in order."""
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[0].split() if lines else []
