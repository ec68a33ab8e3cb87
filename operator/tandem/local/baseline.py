"""The recorded one-worker throughput of a job, for scaling efficiency when the spec gives none.

A successful local run with one worker records ``<runs dir>/<job>/baseline.json``; later runs of
the job (any worker count) measure their efficiency against it unless
spec.metrics.baselineThroughput is set.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

FILE = "baseline.json"


def path(runs_dir: Path, job: str) -> Path:
    return Path(runs_dir) / job / FILE


def load(runs_dir: Path, job: str) -> Optional[dict[str, Any]]:
    try:
        data = json.loads(path(runs_dir, job).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and float(data.get("throughput") or 0) > 0 else None


def record(runs_dir: Path, job: str, throughput: float, **details: Any) -> Path:
    """Write the baseline atomically; returns its path."""
    target = path(runs_dir, job)
    target.parent.mkdir(parents=True, exist_ok=True)
    data = {"job": job, "throughput": throughput,
            "recordedAt": datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
            **details}
    tmp = target.with_name(f".{FILE}.{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, target)
    return target


def choose(spec_baseline: Optional[float], runs_dir: Path, job: str) -> tuple[Optional[float], str]:
    """The baseline to use and where it came from: the spec's, the recorded one, or none."""
    if spec_baseline:
        return spec_baseline, "spec.metrics.baselineThroughput"
    recorded = load(runs_dir, job)
    if recorded:
        return float(recorded["throughput"]), f"one-worker run of {recorded.get('recordedAt', '?')}"
    return None, ""
