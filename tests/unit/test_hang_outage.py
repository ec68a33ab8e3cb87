"""The hang clock across outages of the figures path, pure: a table of read sequences (seconds
after the group's first read; None: a read that failed) and when, if ever, each is judged Hung.
The rule: no outage or restart of the gateway or the Ray head, of any length, makes a job Hung
that keeps stepping; a job that really stopped is still judged Hung."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Optional

import pytest

from tandem.api.status import ProgressStatus, rfc3339
from tandem.controller.policy.metrics import with_metrics
from tandem.figures import progress

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
Reads = list[tuple[int, Optional[dict[int, int]]]]


def judged(reads: Reads, deadline: Optional[int] = 30, startup: Optional[int] = None,
           restart: int = 0) -> Optional[int]:
    """When the reads are first judged Hung, as both executors judge them (a read after failed
    ones is `resumed`); None: never."""
    record, failed = None, False
    for at, steps in reads:
        if steps is None:
            failed = True  # nothing judged while the figures cannot be read
            continue
        record = progress.observe(record, restart, steps, T0 + timedelta(seconds=at), resumed=failed)
        failed = False
        if progress.hang(record, restart, deadline, startup) is not None:
            return at
    return None


def every(start: int, stop: int, steps: Optional[dict[int, int]]) -> Reads:
    """A read every 15 s (the operator's interval) from `start` up to `stop`, each the same."""
    return [(t, steps) for t in range(start, stop, 15)]


SCENARIOS: dict[str, tuple[Reads, Optional[int], Optional[int], Optional[int]]] = {
    # name: (reads, progress deadline, startup deadline, judged Hung at)
    "read failures, then frozen figures while the shippers back off, then steps": (
        [(0, {0: 10, 1: 10}), (15, {0: 20, 1: 20}), *every(30, 150, None),
         (150, {0: 20, 1: 20}), (165, {0: 60, 1: 60}), (180, {0: 90, 1: 90})], 30, None, None),
    "a gateway restart that resets the counts to 0, then steps again below the old counts": (
        [(0, {0: 100}), (15, {0: 200}), (30, {0: 5}), (45, {0: 60}), (60, {0: 120}), (75, {0: 190}),
         (90, {0: 260})], 30, None, None),
    "a Ray head restart: reads fail, then a new collector with lower counts": (
        [(0, {0: 100, 1: 100}), (15, {0: 200, 1: 200}), *every(30, 90, None), (90, {0: 3}),
         (105, {0: 40, 1: 35}), (120, {0: 80, 1: 75})], 30, None, None),
    "an hour-long outage, then stepping resumed": (
        [(0, {0: 10}), (15, {0: 20}), *every(30, 3630, None), (3630, {0: 20}), (3645, {0: 900}),
         (3660, {0: 950})], 30, None, None),
    "an outage before the first step, under a startup deadline": (
        [(0, {}), *every(15, 300, None), (300, {}), (315, {0: 4})], 30, 60, None),
    "a real hang with a healthy gateway": (
        [(0, {0: 10}), (15, {0: 20}), (30, {0: 20}), (45, {0: 20}), (60, {0: 20})], 30, None, 45),
    "a real hang after an outage: judged one deadline after the figures came back": (
        [(0, {0: 10}), (15, {0: 20}), *every(30, 75, None), *every(75, 200, {0: 20})], 30, None, 105),
    "a real hang after a collector reset: judged one deadline after the reset": (
        [(0, {0: 100}), (15, {0: 200}), *every(30, 200, {0: 7})], 30, None, 60),
    "a real startup hang with a healthy gateway": (every(0, 200, {}), None, 60, 60),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_the_hang_clock_across_outages(name):
    reads, deadline, startup, expected = SCENARIOS[name]
    assert judged(reads, deadline, startup) == expected


def test_a_later_group_resumes_the_same_way():
    """After a restart the collector holds the earlier groups' steps: a baseline, and an outage in
    the new group restarts its clock as in the first."""
    reads: Reads = [(0, {0: 500}), (15, {0: 520}), *every(30, 120, None), (120, {0: 520}), (135, {0: 560})]
    assert judged(reads, restart=1) is None


def test_the_record_says_when_the_clock_started_and_keeps_when_steps_last_rose():
    first = progress.observe(None, 0, {0: 10}, T0)
    assert first.clock_from == rfc3339(T0)
    later = progress.observe(first, 0, {0: 10}, T0 + timedelta(seconds=300), resumed=True)
    assert later.clock_from == rfc3339(T0 + timedelta(seconds=300))
    assert later.last_step_at == rfc3339(T0)  # the truth about the last rise is kept
    assert progress.due_in(later, 0, 30, None) == 30.0
    steady = progress.observe(later, 0, {0: 12}, T0 + timedelta(seconds=315))
    assert steady.clock_from == later.clock_from and steady.last_step_at == steady.checked_at


def test_the_operator_resumes_the_clock_after_a_failed_read():
    """policy/metrics.py: figures read after MetricsAvailable False restart the hang clock."""
    figures = {"available": True, "perWorker": [{"index": 0, "steps": 20, "throughput": 64.0}]}
    start = with_metrics({}, figures, T0, 1)
    failed = with_metrics(start, None, T0 + timedelta(seconds=15), 1, "the gateway answered 503")
    assert failed["progress"] == start["progress"]  # nothing read, nothing judged
    back = T0 + timedelta(seconds=600)
    resumed = with_metrics(failed, figures, back, 1)
    assert resumed["progress"]["clockFrom"] == rfc3339(back)
    assert resumed["progress"]["lastStepAt"] == rfc3339(T0)
    steady = with_metrics(resumed, figures, back + timedelta(seconds=15), 1)
    assert steady["progress"]["clockFrom"] == rfc3339(back)


# ------------------------------------------------------------ reads succeed, stores fail


def operator_verdicts(reads: list[tuple[int, int, Optional[int]]], deadline: int = 30) -> Optional[int]:
    """When the operator (policy/metrics.py, then figures/progress.hang) first judges the reads Hung;
    None: never. Each read: (seconds after the first, worker 0's steps, seconds after the first of
    the gateway's last interruption of the job's intake, None: none), every read succeeding."""
    status: dict = {}
    for at, steps, interrupted in reads:
        figures = {"available": True, "perWorker": [{"index": 0, "steps": steps, "throughput": 64.0}]}
        if interrupted is not None:
            figures["ingestInterruptedAt"] = rfc3339(T0 + timedelta(seconds=interrupted))
        status = with_metrics(status, figures, T0 + timedelta(seconds=at), 1)
        record = ProgressStatus.model_validate(status["progress"])
        if progress.hang(record, 0, deadline, None) is not None:
            return at
    return None


#: Reads every 15 s that all succeed while the job's stores fail from 20 s to 100 s (the gateway's
#: last interruption moves with each failed store); the figures stand still, the job steps; the
#: shippers deliver again after their backoff, seen at 130 s.
STORES_FAIL = [(0, 10, None), (15, 20, None), (30, 20, 29), (45, 20, 44), (60, 20, 59), (75, 20, 74),
               (90, 20, 89), (105, 20, 100), (120, 20, 100), (135, 90, 100), (150, 120, 100)]


def test_reads_that_succeed_while_stores_fail_never_make_a_stepping_job_hung():
    assert operator_verdicts(STORES_FAIL) is None
    # The same reads without the gateway's word: the frozen figures were judged Hung.
    assert operator_verdicts([(at, steps, None) for at, steps, _ in STORES_FAIL]) == 45


def test_a_gateway_restarted_between_two_reads_restarts_the_clock():
    """Its start is an interruption: stores may have failed before it, unseen by it."""
    reads = [(0, 10, None), (15, 20, None), (30, 20, 25), (45, 20, 25), (60, 70, 25)]
    assert operator_verdicts(reads) is None
    assert operator_verdicts([(at, steps, None) for at, steps, _ in reads]) == 45


def test_a_job_that_stopped_is_still_judged_hung_after_the_intake_came_back():
    """An interruption seen once restarts the clock once: a job that stopped is judged one deadline
    (and at most one read, for the slack) after the intake came back, and an interruption older
    than the previous read restarts nothing."""
    reads = [(0, 10, None), (15, 20, None), (30, 20, 25), *[(t, 20, 25) for t in range(45, 200, 15)]]
    assert operator_verdicts(reads) == 60
    assert progress.intake_interrupted(rfc3339(T0), rfc3339(T0 + timedelta(seconds=15))) is False
    assert progress.intake_interrupted(rfc3339(T0 + timedelta(seconds=14)), rfc3339(T0 + timedelta(seconds=15)))
    assert progress.intake_interrupted(None, rfc3339(T0)) is False
