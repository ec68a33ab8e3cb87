"""status.metrics: refreshed from the figures gateway at a bounded rate while Running, once more
when the job succeeds, and a failed read never fails the reconcile (it turns MetricsAvailable
False with the reason instead).

The read at the end is what makes the figures complete: a Job completes only after every worker
process has exited, and each exits only after its shipper's bounded final flush, so by then the
collector holds every record it will ever get. Without it, status kept whatever the last read
while Running saw, 0 to 15 s before the end: on a loaded node, sometimes one worker's figures
only (the e2e test's "both workers' figures" check failed that way), and nothing read again.

The same read brings the launchers' in-place restart records (launch/teller.py posts them to the
gateway, the one place a cluster's launchers can tell the operator without it reading pod logs):
`with_recoveries` counts them into status.inPlaceRestarts and status.recoveries, once per round of
a group (api/recoveries.py), and names an event for each restart new to status. Without figures
(spec.metrics.enabled false, or no gateway) nothing carries them: inPlaceRestarts stays 0 while
the pods' logs say what was restarted. An elastic job's launchers tell each rendezvous round's
world the same way: `with_world` writes the newest round's world size to status.worldSize. Each
read with figures may also add a point to status.metricsHistory (`with_history`: bounded and
downsampled, figures/history.py), which the dashboard charts the job from, during and after it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Mapping, Optional

from pydantic import ValidationError

from ...api.model import TrainingJob
from ...api.recoveries import Recoveries, recovery_text
from ...api.status import (
    MetricsHistory,
    MetricsStatus,
    ProgressStatus,
    RecoveryStatus,
    Told,
    WorkerMetrics,
    parse_time,
    rfc3339,
)
from ...contract import METRICS_AVAILABLE, REASON_RECOVERED_IN_PLACE
from ...figures import history, progress
from ..actions import Event, MetricsRead
from ..decision import Decision, set_condition

#: How often status.metrics is refreshed while Running (bounded rate of status writes).
METRICS_INTERVAL_SECONDS = 15.0


def refresh_due(status: Mapping[str, Any], now: datetime) -> bool:
    updated = parse_time((status.get("metrics") or {}).get("updatedAt"))
    return updated is None or now - updated >= timedelta(seconds=METRICS_INTERVAL_SECONDS)


def schedule_metrics(decision: Decision, job: TrainingJob, final: bool = False) -> None:
    """While Running: ask for a metrics read when one is due, and come back for the next.
    `final` (the pass that finds the job complete): read now, whenever the last read was."""
    if not job.spec.metrics.enabled:
        return
    if final or refresh_due(decision.status, decision.now):
        decision.actions.read_metrics = MetricsRead(
            namespace=job.metadata.namespace,
            name=job.metadata.name,
            uid=job.metadata.uid or "",
            workers=job.spec.worker_count,
            baseline_throughput=job.spec.metrics.baseline_throughput,
            straggler_threshold=job.spec.metrics.straggler_threshold,
            generation=decision.generation,
        )
    if not final:
        decision.actions.requeue_after = METRICS_INTERVAL_SECONDS


def checked_figures(metrics: Mapping[str, Any]) -> tuple[Optional[dict[str, Any]], str]:
    """The figures as status may carry them (validated by MetricsStatus: finite, non-negative,
    bounded), or None and why not. Done before they are merged into the status patch, so a bad
    figure costs the figures only, never the phase and conditions written with them."""
    try:
        model = MetricsStatus.model_validate(dict(metrics))
    except ValidationError as error:
        first = error.errors()[0]  # a ValidationError carries at least one
        where = ".".join(str(part) for part in first["loc"])
        return None, f"figures refused: {where}: {first['msg']}"[:300]
    return model.model_dump(by_alias=True, exclude_none=True, mode="json"), ""


def replacing(previous: Mapping[str, Any], fresh: Mapping[str, Any]) -> dict[str, Any]:
    """`fresh` as a merge patch that replaces `previous`: keys it no longer has are set to null.

    A JSON merge patch only adds and changes keys; without the nulls a worker that stopped being
    the straggler would stay `straggler` forever, and so would an old `reason`."""
    return {**{key: None for key in previous if key not in fresh}, **fresh}


def with_progress(status: Mapping[str, Any], figures: Mapping[str, Any], now: datetime,
                  resumed: bool = False) -> dict[str, Any]:
    """status.progress after one read of the figures: each worker's steps and when they last rose
    (figures/progress.py; what policy/hang.py judges a hang from), and percent and ETA. `resumed`:
    the previous read failed, so the hang clock starts again at this one (an outage is not silence)."""
    raw = status.get("progress")
    previous = ProgressStatus.model_validate(raw) if isinstance(raw, dict) else None
    workers = [WorkerMetrics.model_validate(w) for w in figures.get("perWorker") or []]
    steps = {w.index: w.steps for w in workers}
    fresh = progress.observe(previous, int(status.get("restarts") or 0), steps, now, workers, resumed=resumed)
    return replacing(raw if isinstance(raw, dict) else {}, fresh.model_dump(by_alias=True, exclude_none=True))


def with_metrics(status: Mapping[str, Any], metrics: Optional[Mapping[str, Any]], now: datetime,
                 generation: Optional[int], error: str = "", track_progress: bool = True) -> dict[str, Any]:
    """status with fresh figures, or with MetricsAvailable False and the reason; never fails.
    Fresh figures also update status.progress (percent and ETA for everyone; the hang clock is
    judged from it only where a deadline is set, policy/hang.py); `track_progress=False` leaves it."""
    updated = dict(status)
    conditions = list(updated.get("conditions") or [])
    previous = dict(updated.get("metrics") or {})
    figures = None
    if metrics is not None and metrics.get("available", True):
        figures, error = checked_figures(metrics)
    if figures is not None:
        updated["metrics"] = replacing(previous, {**figures, "available": True, "updatedAt": rfc3339(now)})
        kept = with_history(updated.get("metricsHistory"), figures, now)
        if kept is not None:
            updated["metricsHistory"] = kept
        if track_progress:
            # The last read failed (metrics.available false), or the gateway could not store the job's
            # records since it: the figures path was down until now.
            resumed = previous.get("available") is False or progress.intake_interrupted(
                figures.get("ingestInterruptedAt"), previous.get("updatedAt"))
            updated["progress"] = with_progress(updated, figures, now, resumed=resumed)
        updated["conditions"] = set_condition(conditions, METRICS_AVAILABLE, "True", "Reporting",
                                              "workers report throughput", now, generation)
    else:
        updated["metrics"] = {**previous, "available": False, "updatedAt": rfc3339(now)}
        updated["conditions"] = set_condition(conditions, METRICS_AVAILABLE, "False", "MetricsUnavailable",
                                              error or "the job's figures could not be read", now, generation)
    return updated


def with_history(raw: Any, figures: Mapping[str, Any], now: datetime) -> Optional[dict[str, Any]]:
    """status.metricsHistory with this read as its newest point (figures/history.py), or None when
    no point is due: then the status patch leaves it as it is."""
    try:
        previous = MetricsHistory.model_validate(raw) if isinstance(raw, dict) else None
    except ValidationError:
        previous = None  # not what this operator writes: start again rather than keep it
    fresh = history.recorded(previous, MetricsStatus.model_validate(dict(figures)), now)
    return None if fresh is None else fresh.model_dump(by_alias=True, exclude_none=True, mode="json")


def with_world(status: Mapping[str, Any], world_size: Optional[int]) -> dict[str, Any]:
    """status with the world size the read brought (status.worldSize); a read without one (no
    round told yet, or a fixed-size job) keeps what status holds: the gateway forgets nothing of a
    job while it runs, so a read without it is one that could not say, not a world gone."""
    if world_size is None:
        return dict(status)
    return {**status, "worldSize": world_size}


def with_recoveries(status: Mapping[str, Any], told: list[Told]) -> tuple[dict[str, Any], list[Event]]:
    """status with the in-place restarts a read brought counted in, and one event per restart new
    to status (its first word: a peer's earlier failure read later corrects the record, not the event)."""
    if not told:
        return dict(status), []
    kept = [RecoveryStatus.model_validate(r) for r in status.get("recoveries") or []]
    recoveries = Recoveries.from_status(int(status.get("inPlaceRestarts") or 0), kept)
    fresh = recoveries.told(told)
    updated = {**status, "inPlaceRestarts": recoveries.in_place,
               "recoveries": [r.model_dump(by_alias=True, exclude_none=True, mode="json") for r in recoveries.latest]}
    return updated, [Event("Normal", REASON_RECOVERED_IN_PLACE, recovery_text(record)) for record in fresh]
