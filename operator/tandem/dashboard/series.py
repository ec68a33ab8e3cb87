"""The job page's charts: each worker's throughput, step time and GPU use over time, and the job's
scaling efficiency, from a run of figures (`MetricsStatus` samples, oldest first).

Pure. A local run keeps every sample (`<run dir>/metrics.jsonl`, one a second); a cluster job
keeps a bounded, downsampled history in its status (`from_history`). Whatever their number, a
chart gets at most `MAX_POINTS` (evenly spaced, the newest always kept): a day-long run must not
send the browser 86,400 points per line. The same series also make the chart's text alternative
(`summary`): what a screen reader or curl reads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, Sequence

from ..api.status import MetricsHistory, MetricsStatus, parse_time

#: Points per line at most.
MAX_POINTS = 400
#: Each worker's lines: (its WorkerMetrics field, also its key in the series; label; unit).
WORKER_LINES: tuple[tuple[str, str, str], ...] = (
    ("throughput", "throughput", "samples/s"),
    ("step_time_p50", "median step time", "s"),
    ("gpu_utilization", "GPU use", "%"),
)


@dataclass
class Series:
    """Columns aligned on `t` (epoch seconds), None where a sample lacks the figure, as uPlot takes them."""

    t: list[float] = field(default_factory=list)
    throughput: list[Optional[float]] = field(default_factory=list)
    efficiency: list[Optional[float]] = field(default_factory=list)
    #: worker index -> line key (WORKER_LINES) -> values
    workers: dict[int, dict[str, list[Optional[float]]]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"t": self.t, "throughput": self.throughput, "efficiency": self.efficiency,
                "workers": {str(index): lines for index, lines in sorted(self.workers.items())}}


def parse_history(lines: Iterable[str]) -> list[MetricsStatus]:
    """The samples of a figures history (one JSON object a line); a line cut short by a crash or
    not a sample is skipped."""
    samples = []
    for line in lines:
        try:
            data = json.loads(line)
            data.pop("final", None)  # the history's marker of the run's last line, not a figure
            samples.append(MetricsStatus.model_validate(data))
        except (ValueError, TypeError, AttributeError):
            continue
    return samples


def thin(count: int, limit: int = MAX_POINTS) -> list[int]:
    """Indices of at most `limit` of `count` samples, evenly spaced, first and last kept."""
    if count <= limit:
        return list(range(count))
    step = (count - 1) / (limit - 1)
    return sorted({round(i * step) for i in range(limit)})


def series(samples: Sequence[MetricsStatus], limit: int = MAX_POINTS) -> Series:
    """The charts' columns from samples with figures (unavailable ones and those without a time
    are left out: a gap in the line, not a zero)."""
    usable = [s for s in samples if s.available and s.throughput is not None and parse_time(s.updated_at)]
    chosen = [usable[i] for i in thin(len(usable), limit)]
    indices = sorted({w.index for s in chosen for w in s.per_worker})
    result = Series(workers={i: {key: [] for key, *_ in WORKER_LINES} for i in indices})
    for sample in chosen:
        moment = parse_time(sample.updated_at)
        assert moment is not None  # kept above only with a time
        result.t.append(moment.timestamp())
        result.throughput.append(sample.throughput)
        result.efficiency.append(sample.scaling_efficiency)
        by_index = {w.index: w for w in sample.per_worker}
        for index in indices:
            worker = by_index.get(index)
            for key, *_ in WORKER_LINES:
                value = getattr(worker, key) if worker is not None else None
                result.workers[index][key].append(None if value is None else float(value))
    return result


def from_history(history: Optional[MetricsHistory]) -> Series:
    """The charts' columns from a job's status.metricsHistory (a cluster job's: figures/history.py),
    which keeps throughput per worker only."""
    result = Series()
    if history is None:
        return result
    result.workers = {i: {key: [] for key, *_ in WORKER_LINES} for i in history.worker_indexes}
    for kept in history.points:
        result.t.append(float(kept.t))
        result.throughput.append(kept.throughput)
        result.efficiency.append(kept.efficiency)
        for position, index in enumerate(history.worker_indexes):
            for key, *_ in WORKER_LINES:
                value = kept.workers[position] if key == "throughput" and position < len(kept.workers) else None
                result.workers[index][key].append(value)
    return result


@dataclass(frozen=True)
class LineSummary:
    """A line in words: `worker 1 throughput: 118.0 to 131.2 samples/s (low 97.5, high 140.0), 212 points`."""

    label: str
    first: float
    last: float
    low: float
    high: float
    points: int
    unit: str


def summary(data: Series) -> list[LineSummary]:
    """The chart's text alternative: each drawn line's first, last, lowest and highest value."""
    lines: list[tuple[str, list[Optional[float]], str]] = [("job throughput", data.throughput, "samples/s"),
                                                            ("scaling efficiency", data.efficiency, "")]
    for index, by_key in sorted(data.workers.items()):
        lines += [(f"worker {index} {label}", by_key[key], unit) for key, label, unit in WORKER_LINES]
    kept = []
    for label, values, unit in lines:
        present = [v for v in values if v is not None]
        if present:
            kept.append(LineSummary(label, present[0], present[-1], min(present), max(present), len(present), unit))
    return kept
