"""Hang detection from the reported steps, pure: shared by the operator and `tandem run`.

Steps are counted by the one who reads them, on the reader's own clock: each read of the figures
gives every worker's step count, and a worker's `at` moves to the read's time whenever its count
rose. The workers' own clocks are never compared with the reader's.

A group is Hung when fresh figures show no rise for the deadline: `checkedAt - lastStepAt` (the
progress deadline, once a first step was seen) or `checkedAt - since` (the startup deadline,
before it). Measured at `checkedAt`, the last successful read, never at "now": while the figures
cannot be read (a gateway down, a Ray restarting), nothing is judged, so an outage of the metrics
channel is never taken for a hang of the training. A hang is never called early: a step at time T
is seen at a read R >= T, so a hang is called at R + deadline or later.

The clock counts only time in which the job's figures could have arrived. While the figures cannot
be read nothing is judged, but that alone is not enough: after an outage (a gateway or Ray head
restarted, a Ray call timing out) the first read that succeeds would measure from the last rise
before the outage, and the shippers, just back from their backoff, may not have sent the steps
made meanwhile. Reads may also succeed while the job's records could not be stored (its collector failing on
stores, a gateway restarted between two reads): the gateway says when its intake of the job was
last interrupted (status.metrics.ingestInterruptedAt), and a read that finds an interruption after
the previous read has `resumed` too (`intake_interrupted`). So a read that `resumed` after failed
reads or an interrupted intake, and a read whose counts fell (the
collector was recreated and lost its memory: counts start again from 0), restart the clock:
`clockFrom` moves to that read, the counts it shows are the new baseline, and the deadlines run
from `clockFrom` or `lastStepAt`, whichever is later. Hence no outage or restart of the figures
path, of any length, makes a job Hung that keeps stepping; a job that really stopped is still
judged Hung, one deadline after the path came back.

The first read of a group is its baseline. In the first group (restart 0) every count starts at 0,
so steps seen at the first read are the group's own; after a restart the collector still holds the
earlier groups' steps, so the first read's counts are taken as they are, and only a rise after
them is a step of the new group (the clock may start up to one read late; it never starts early).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping, Optional, Sequence

from ..api.status import (
    MAX_WORKER_FIGURES,
    ProgressStatus,
    WorkerMetrics,
    WorkerProgress,
    duration,
    parse_time,
    rfc3339,
)
from . import eta

#: Seconds of doubt in comparing an interruption with the previous read: both are whole seconds,
#: and the interruption's moment is worked out from an age. Counting one just before the previous
#: read again restarts the clock once more, a verdict one read later; missing one could be a false Hung.
INTAKE_SLACK_SECONDS = 2


def intake_interrupted(interrupted_at: Optional[str], previous_read: Optional[str]) -> bool:
    """Whether the gateway could not store the job's records at some moment after the previous read
    (`interrupted_at`, `previous_read`: RFC 3339): steps made then may not have arrived yet (the
    shippers back off), so the hang clock starts again at this read, as after a failed read."""
    interrupted, previous = parse_time(interrupted_at), parse_time(previous_read)
    if interrupted is None or previous is None:
        return False
    return (interrupted - previous).total_seconds() >= -INTAKE_SLACK_SECONDS


def collector_reset(before: Mapping[int, WorkerProgress], steps: Mapping[int, int]) -> bool:
    """Whether the counts show a collector that lost its memory: a worker's count fell, or a worker
    that had counted steps is gone. Counts only rise within one collector."""
    return any(steps.get(index, 0) < old.steps for index, old in before.items())


def observe(previous: Optional[ProgressStatus], restart: int, steps: Mapping[int, int], now: datetime,
            figures: Sequence[WorkerMetrics] = (), resumed: bool = False) -> ProgressStatus:
    """The progress record after one read of the figures (`steps`: worker index -> steps so far), at `now` (UTC);
    `figures`, the workers' figures of that read, give percent and ETA (`done`). `resumed`: the reads
    before this one failed (the figures path was down), so the hang clock starts again here."""
    stamp = rfc3339(now)
    fresh = previous is None or previous.restart != restart
    before = {} if fresh or previous is None else {w.index: w for w in previous.workers}
    reset = collector_reset(before, steps)
    workers = []
    for index in sorted(steps)[:MAX_WORKER_FIGURES]:
        count = max(0, int(steps[index]))
        old = before.get(index)
        if reset:
            rose = False  # a new collector's counts: a baseline, not steps of their own
        elif old is None:
            # Absent from the baseline read: it had reported nothing, so any count is this group's.
            rose = count > 0 and (not fresh or restart == 0)
        else:
            rose = count > old.steps
        workers.append(WorkerProgress(index=index, steps=count, at=stamp if rose else (old.at if old else None)))
    times = [w.at for w in workers if w.at]
    since = stamp if fresh or previous is None else previous.since
    clock_from = stamp if fresh or previous is None or resumed or reset else (previous.clock_from or since)
    started = parse_time(since)
    return ProgressStatus(
        restart=restart,
        since=since,
        checked_at=stamp,
        last_step=max((w.steps for w in workers), default=0),
        last_step_at=max(times) if times else None,  # RFC 3339 in UTC sorts as time does
        clock_from=clock_from,
        workers=workers,
        elapsed=None if started is None else max(0, int((now - started).total_seconds())),
        **done(figures),
    )


def done(figures: Sequence[WorkerMetrics]) -> dict[str, Any]:
    """stepsDone, stepsTotal, percent and eta of the job from its workers' figures (as ProgressStatus
    fields; empty without figures). The job ends with its last worker: the furthest-behind worker's
    steps, against the largest total any worker gave, at the slowest worker's recent rate."""
    if not figures:
        return {}
    steps_done = min(w.steps_done if w.steps_done is not None else w.steps for w in figures)
    totals = [w.steps_total for w in figures if w.steps_total]
    rates = [w.step_rate for w in figures if w.step_rate is not None]
    total = max(totals) if totals else None
    rate = min(rates) if len(rates) == len(figures) else None  # a worker without a rate: no ETA
    estimate = eta.estimate(steps_done, total, rate)
    return {"steps_done": steps_done, "steps_total": total, "percent": estimate.percent, "eta": estimate.eta}


@dataclass(frozen=True)
class Hang:
    """A group no worker of which reported a step for the deadline."""

    seconds: int
    deadline: int
    startup: bool
    last_step: int
    #: The worker that reported the last step seen; None before any step.
    last_worker: Optional[int]
    #: The workers that went silent first (their steps last rose earliest, fewest steps first).
    silent_first: tuple[WorkerProgress, ...]

    @property
    def worker(self) -> Optional[int]:
        return self.silent_first[0].index if self.silent_first else None

    def message(self) -> str:
        if self.startup:
            return (f"no worker reported a first step within startupDeadlineSeconds ({self.deadline}): "
                    f"{self.seconds}s since the group's steps were first read")
        silent = ", ".join(f"worker {w.index} (step {w.steps}, last rose {w.at or 'never'})"
                           for w in self.silent_first[:5])
        more = f" and {len(self.silent_first) - 5} more" if len(self.silent_first) > 5 else ""
        return (f"no worker reported a step for {self.seconds}s (progressDeadlineSeconds {self.deadline}); "
                f"the last step seen is {self.last_step} (worker {self.last_worker}); "
                f"silent first: {silent}{more}")


def _silent_first(progress: ProgressStatus) -> tuple[WorkerProgress, ...]:
    """The workers whose steps last rose earliest (never: earliest of all); among those, the fewest steps."""
    if not progress.workers:
        return ()
    key = [(w.at or "", w.steps) for w in progress.workers]
    earliest = min(key)
    return tuple(w for w, k in zip(progress.workers, key, strict=True) if k == earliest)


def _clock(progress: ProgressStatus) -> tuple[Optional[datetime], Optional[datetime], Optional[datetime]]:
    """(checkedAt, the time the progress deadline runs from, the time the startup deadline runs
    from): lastStepAt and since, each moved up to clockFrom when that is later (an outage)."""
    checked, last, since = (parse_time(progress.checked_at), parse_time(progress.last_step_at),
                            parse_time(progress.since))
    restarted = parse_time(progress.clock_from)
    if restarted is not None:
        last = None if last is None else max(last, restarted)
        since = restarted if since is None else max(since, restarted)
    return checked, last, since


def hang(progress: Optional[ProgressStatus], restart: int, progress_deadline: Optional[int],
         startup_deadline: Optional[int]) -> Optional[Hang]:
    """The hang these figures show for group `restart`, or None (none, or no figures of that group)."""
    if progress is None or progress.restart != restart:
        return None
    checked, last, since = _clock(progress)
    if checked is None:
        return None
    if last is None:
        if startup_deadline is None or since is None:
            return None
        seconds = int((checked - since).total_seconds())
        if seconds < startup_deadline:
            return None
        return Hang(seconds, startup_deadline, True, 0, None, tuple(progress.workers))
    if progress_deadline is None:
        return None
    seconds = int((checked - last).total_seconds())
    if seconds < progress_deadline:
        return None
    leader = max(progress.workers, key=lambda w: (w.steps, w.at or ""), default=None)
    return Hang(seconds, progress_deadline, False, progress.last_step, leader.index if leader else None,
                _silent_first(progress))


def due_in(progress: Optional[ProgressStatus], restart: int, progress_deadline: Optional[int],
           startup_deadline: Optional[int]) -> Optional[float]:
    """Seconds from the last read until a hang would be called if nothing rose; None: no deadline runs."""
    if progress is None or progress.restart != restart:
        return None
    checked, last, since = _clock(progress)
    if checked is None:
        return None
    if last is not None and progress_deadline is not None:
        return (last - checked).total_seconds() + progress_deadline
    if last is None and since is not None and startup_deadline is not None:
        return (since - checked).total_seconds() + startup_deadline
    return None


def progress_text(progress: Optional[ProgressStatus]) -> str:
    """`step 120/400 (30%) ETA 1:05` (the ETA left out when it cannot be known); empty without a total."""
    if progress is None or progress.percent is None or progress.steps_total is None:
        return ""
    text = f"step {progress.steps_done or 0}/{progress.steps_total} ({progress.percent:.0f}%)"
    return text + (f" ETA {duration(progress.eta)}" if progress.eta is not None else "")
