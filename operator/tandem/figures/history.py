"""A job's figures over time, as its status keeps them (status.metricsHistory): pure.

Why in the status: a chart of a cluster job must outlive the job's end and whoever was looking
(the dashboard reads the TrainingJob with the user's own credentials, and nothing else it could
read keeps figures after a job ends). Why bounded: every status write sends the whole history, and
a status must stay small whatever the job's length. So a point is added only when `spacing`
seconds have passed since the last one, and when the points reach `MAX_HISTORY_POINTS` the
neighbours merge in pairs (their mean) and the spacing doubles: an hour-long job keeps 120 points
of 30 s, a week-long one 120 points of about 85 minutes, always from its start to now.
"""

from __future__ import annotations

from datetime import datetime
from typing import Optional, Sequence

from ..api.status import MAX_HISTORY_POINTS, MAX_HISTORY_WORKERS, HistoryPoint, MetricsHistory, MetricsStatus

#: The first spacing: the operator's read interval, so that every read adds a point at first.
FIRST_SPACING_SECONDS = 15
#: A read a little early (reads are scheduled, not exact) still counts as due.
EARLY = 0.8


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
