"""A local run's TrainingJob record: `<run dir>/trainingjob.json`, the job as it ran and its status,
in the very shape the API server stores a TrainingJob (apiVersion, kind, metadata, spec, status).

Why a record of its own: a run's logs and figures history say how it trained, not how it ended
(a phase, each failure and how it was recovered). With the status kept as a cluster keeps it,
`tandem dashboard` reads a local run and a TrainingJob on a cluster as one kind of document, and
shows both through the same code. Written when the first group starts (Running) and when the run
ends; a run killed in between keeps its Running record, and a reader tells it from a live one by
the run's `.active` marker (local/logs.py `run_is_active`).
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

from ..api.model import TrainingJob
from ..api.status import TrainingJobStatus, rfc3339

#: The record's file name in a run directory.
RECORD = "trainingjob.json"


def document(job: TrainingJob, status: TrainingJobStatus) -> dict[str, Any]:
    """The record: the job as the API server would store it, with this run's status; the run's
    start is its creationTimestamp, as a cluster job's creation is."""
    data = job.to_dict()
    data.setdefault("metadata", {})["creationTimestamp"] = status.start_time or rfc3339(datetime.now(timezone.utc))
    data["status"] = status.model_dump(mode="json", by_alias=True, exclude_none=True)
    return data


def write(run_dir: Path, job: TrainingJob, status: TrainingJobStatus) -> None:
    """Replace the record at once (a reader never sees half of one)."""
    path = run_dir / RECORD
    tmp = path.with_name(f".{RECORD}.{os.getpid()}")
    tmp.write_text(json.dumps(document(job, status), indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)


def read(run_dir: Path) -> Optional[dict[str, Any]]:
    """The run's record, or None when it has none (a run from before records, or one that never
    started) or it cannot be read."""
    try:
        data = json.loads((run_dir / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
