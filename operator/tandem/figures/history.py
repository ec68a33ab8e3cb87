"""A job's figures over time, as its status keeps them (status.metricsHistory): pure.

Why in the status: a chart of a cluster job must outlive the job's end and whoever was looking
(the dashboard reads the TrainingJob with the user's own credentials, and nothing else it could
read keeps figures after a job ends). Why bounded: every status write sends the whole history, and
a status must stay small whatever the job's length. So a point is added only when `spacing`
seconds have passed since the last one, and when the points reach `MAX_HISTORY_POINTS` the
neighbours merge in pairs (their mean) and the spacing doubles: an hour-long job keeps 120 points
of 30 s, a week-long one 120 points of about 85 minutes, always from its start to now.

A local run keeps a sample a second instead (its metrics.jsonl); `backfill` gives it the seconds
before its figures could first be read, from the step records themselves.
"""

from __future__ import annotations

import bisect
import math
from datetime import datetime, timezone
from typing import Any, Optional, Sequence

from ..api.status import MAX_HISTORY_POINTS, MAX_HISTORY_WORKERS, HistoryPoint, MetricsHistory, MetricsStatus, rfc3339
from . import summary
from .snapshot import check

#: The first spacing: the operator's read interval, so that every read adds a point at first.
FIRST_SPACING_SECONDS = 15
#: A read a little early (reads are scheduled, not exact) still counts as due.
EARLY = 0.8
#: Samples a backfill makes at most (spaced wider when the gap is longer): a run whose Ray never
#: came up has only its spooled records, and its history must stay a readable size.
MAX_BACKFILL = 600


def point(metrics: MetricsStatus, at: datetime, indexes: Sequence[int]) -> Optional[HistoryPoint]:
    """The figures as one point, with the throughput of the workers in `indexes` (0 for a worker
    absent from this read: it reported no step in the window); None without a throughput."""
    if not metrics.available or metrics.throughput is None:
        return None
    by_index = {w.index: w.throughput for w in metrics.per_worker}
    return HistoryPoint(t=int(at.timestamp()), throughput=metrics.throughput, efficiency=metrics.scaling_efficiency,
                        workers=[by_index.get(i, 0.0) for i in indexes])


def merged(first: HistoryPoint, second: HistoryPoint) -> HistoryPoint:
    """Two neighbours as one: the later time, the mean of each figure (of the efficiencies known)."""
    efficiencies = [e for e in (first.efficiency, second.efficiency) if e is not None]
    return HistoryPoint(
        t=second.t, throughput=(first.throughput + second.throughput) / 2,
        efficiency=sum(efficiencies) / len(efficiencies) if efficiencies else None,
        workers=[(a + b) / 2 for a, b in zip(first.workers, second.workers, strict=False)])


def recorded(history: Optional[MetricsHistory], metrics: MetricsStatus, at: datetime,
             spacing: int = FIRST_SPACING_SECONDS, limit: int = MAX_HISTORY_POINTS) -> Optional[MetricsHistory]:
    """`history` with the figures read `at` as its newest point, when one is due; None when it
    stays as it is (no figures, or too soon after the last point)."""
    if history is None:
        indexes = sorted(w.index for w in metrics.per_worker)[:MAX_HISTORY_WORKERS]
        history = MetricsHistory(spacing=spacing, worker_indexes=indexes)
    fresh = point(metrics, at, history.worker_indexes)
    if fresh is None:
        return None
    points = list(history.points)
    if points and fresh.t - points[-1].t < EARLY * history.spacing:
        return None
    points.append(fresh)
    spacing = history.spacing
    if len(points) > limit:
        pairs = [merged(points[i], points[i + 1]) for i in range(0, len(points) - 1, 2)]
        points = pairs + ([points[-1]] if len(points) % 2 else [])
        spacing *= 2
    return MetricsHistory(spacing=spacing, worker_indexes=history.worker_indexes, points=points)


def backfill(snapshot: Any, workers: int, baseline: Optional[float], straggler_threshold: float,
             interval: float, limit: int = MAX_BACKFILL) -> list[MetricsStatus]:
    """The figures as they stood every `interval` seconds (on whole seconds) from a snapshot's first
    step record (of those it keeps: each rank's last `snapshot.MAX_RECORDS`) to its last, oldest
    first, each from the records up to that moment (the window is relative to the newest step, so
    a cut of the records gives the figures of then). A second in which no step ended has no sample:
    the window would repeat the figures of the last step, as if training had gone on.

    Why: a local run's figures can first be read when its Ray is up, which on a loaded machine can
    be most of a short run; until then the shippers hold their records (with the moments the steps
    ended), so the seconds before are not lost, only late. Each rank's word besides its steps (GPU
    use, its step total) is the latest and would misdate the past, so these samples leave it out."""
    checked = check(snapshot, workers)
    times = sorted(step.t for steps in checked.records.values() for step in steps)
    if not times or interval <= 0:
        return []
    first, last = times[0], times[-1]
    spacing = max(interval, math.ceil((last - first) / limit))
    samples = []
    moment = math.floor(first) + spacing  # whole seconds, as a status's time is written
    while moment <= last:
        if bisect.bisect_right(times, moment) == bisect.bisect_right(times, moment - spacing):
            moment += spacing
            continue  # no step ended in this second (a restart, a pause): no figures to claim for it
        cut = {key: [step for step in steps if step.t <= moment] for key, steps in checked.records.items()}
        totals = {key: checked.totals.get(key, len(steps)) - (len(steps) - len(cut[key]))
                  for key, steps in checked.records.items()}
        at = rfc3339(datetime.fromtimestamp(moment, timezone.utc))
        samples.append(summary.summarize({key: steps for key, steps in cut.items() if steps}, workers, baseline,
                                         straggler_threshold, updated_at=at, steps_total=totals))
        moment += spacing
    return samples
