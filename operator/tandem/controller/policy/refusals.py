"""Children the job cannot have: a name held by an object it does not own, or a create the API
server refused (an invalid object, Pod Security, a ResourceQuota...).

Either is said in a condition, with the server's own words, instead of a Pending that reads
"created N workers" forever: NameConflict names the object and what owns it, ChildRejected the
server's reason and message. A foreign object is never taken over and nothing is created while
a name is held; a refused create is tried again with exponential backoff, which also finds a
name freed by an object the watches do not see (one without Tandem's label).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Optional

from ...api.status import parse_time, rfc3339
from ...contract import CHILD_REJECTED, NAME_CONFLICT
from ..actions import FailedCreatesRead
from ..decision import Decision
from ..observed import FAILED_CREATE, JobState, Observed, Refusal

#: The first retry of a refused create comes after this many seconds, then twice as long each
#: time, up to RETRY_CAP_SECONDS: a quota raised or a name freed is found within minutes, and a
#: refusal that stays costs one API call per cap.
RETRY_BASE_SECONDS = 2.0
RETRY_CAP_SECONDS = 300.0
#: How long a Job may be short of pods before its FailedCreate events are read. The Job
#: controller creates a Job's pods within seconds when it can, and each read lists events (the
#: API server filters them by scanning the namespace's): read at once and every 2 s after, each
#: Job the Job controller had not reached yet cost a list every 2 s, thousands a minute at 10,000
#: jobs, which timed out and slowed the API server for everyone (bench B3). After it, a Job
#: short of pods without a refusal is read for every half of its age (at most RETRY_CAP_SECONDS).
FAILED_CREATE_GRACE_SECONDS = 10.0
#: Longest condition message: several conflicts are named in one.
CONDITION_MESSAGE_LIMIT = 1024


def retry_delay(attempts: int) -> float:
    """Seconds from the `attempts`-th refusal in a row to the next try: 2, 4, 8 ... 300."""
    return min(RETRY_BASE_SECONDS * 2.0 ** max(attempts - 1, 0), RETRY_CAP_SECONDS)


def retry_time(refusal: Refusal, now: datetime) -> Optional[datetime]:
    """When the refused create may be tried again. None for a conflict seen in the watches: no
    try can succeed while that object is there, and its going away brings the job back. A pod
    refused to the Job controller is the Job controller's to retry (with its own backoff): it
    holds up nothing of ours."""
    if refusal.reason == FAILED_CREATE:
        return now
    if refusal.attempts == 0:
        return None
    return (parse_time(refusal.at) or now) + timedelta(seconds=retry_delay(refusal.attempts))


def _next_try(refusals: list[Refusal], now: datetime) -> str:
    if all(r.reason == FAILED_CREATE for r in refusals):
        return "the Job controller retries with its own backoff"
    times = [retry_time(r, now) for r in refusals]
    if any(t is None for t in times):
        return "until the object is gone"
    return f"next try at {rfc3339(max(t for t in times if t is not None))}"


def _refused_create(refusal: Refusal) -> str:
    if refusal.reason == FAILED_CREATE:
        return (f"the Job controller could not create the pods of Job {refusal.name} "
                f"({refusal.attempts} times): {refusal.message}")
    return (f"creating {refusal.kind} {refusal.name} was refused "
            f"({refusal.reason}, {refusal.attempts} in a row): {refusal.message}")


def _message(refusals: list[Refusal], now: datetime) -> str:
    if refusals[0].conflict:
        text = "; ".join(r.message for r in refusals) + f"; not taken over: nothing is created {_next_try(refusals, now)}"
    else:
        text = "; ".join(_refused_create(r) for r in refusals) + f"; {_next_try(refusals, now)}"
    return text[:CONDITION_MESSAGE_LIMIT]


def _report(decision: Decision, type_: str, refusals: list[Refusal]) -> None:
    if refusals:
        reason = "NameInUse" if type_ == NAME_CONFLICT else refusals[0].reason
        decision.condition(type_, "True", reason, _message(refusals, decision.now))
        return
    held = next((c for c in decision.status.get("conditions") or [] if c.get("type") == type_), None)
    if held is not None and held.get("status") == "True":
        decision.condition(type_, "False", "Resolved", "the job's children could be created")


def current_refusals(observed: Observed, workers: int, restart: int) -> list[Refusal]:
    """The refusals that still hold. The Job controller's FailedCreate holds only while the job's
    own Job is short of pods, and only if it came after that Job was created (an old group's
    events outlive their Job)."""
    current = observed.job
    short = current is not None and len(observed.pods_of(restart)) < workers

    def holds(refusal: Refusal) -> bool:
        if refusal.reason != FAILED_CREATE:
            return True
        assert current is not None or not short
        return short and current is not None and refusal.at >= current.created

    return [r for r in observed.refusals if holds(r)]


def read_failed_creates(decision: Decision, current: JobState, observed: Observed, workers: int) -> None:
    """While the job's own Job is short of pods, ask the runtime why: its FailedCreate events.

    Not in the Job controller's first seconds, and then less often the longer the Job waits: a
    Job controller that is merely busy (thousands of Jobs at once) is not refused anything, and
    each read lists the namespace's events."""
    if current.complete or current.failed or current.deleting:
        return
    if len(observed.pods_of(decision.restart)) < workers:
        created = parse_time(current.created)
        age = (decision.now - created).total_seconds() if created is not None else FAILED_CREATE_GRACE_SECONDS
        if age < FAILED_CREATE_GRACE_SECONDS:  # the Job controller's few seconds are not up: look when they are
            later = decision.actions.requeue_after
            wait = FAILED_CREATE_GRACE_SECONDS - age
            decision.actions.requeue_after = wait if later is None else min(later, wait)
            return
        ref = decision.job_ref
        decision.actions.read_failed_creates = FailedCreatesRead(ref.namespace, ref.name, current.uid)
        # The Job controller's retries change nothing that is watched: look again, less often
        # while its refusals go on, or while it has not come to the Job at all.
        refused = [r.attempts for r in observed.refusals if r.reason == FAILED_CREATE]
        decision.actions.requeue_after = (retry_delay(max(refused)) if refused else
                                          min(max(RETRY_BASE_SECONDS, age / 2), RETRY_CAP_SECONDS))


def report_refusals(decision: Decision, refusals: list[Refusal]) -> bool:
    """Say what was refused (or that nothing is any more); True when the missing children may be
    created now, else come back when the next retry is due."""
    _report(decision, NAME_CONFLICT, [r for r in refusals if r.conflict])
    _report(decision, CHILD_REJECTED, [r for r in refusals if not r.conflict])
    times = [retry_time(r, decision.now) for r in refusals]
    if any(t is None for t in times):
        return False
    waiting = [t for t in times if t is not None and t > decision.now]
    if waiting:
        decision.actions.requeue_after = max((min(waiting) - decision.now).total_seconds(), 1.0)
        return False
    return True


def pending_message(refusals: list[Refusal], now: datetime) -> tuple[str, str]:
    """The Pending condition's reason and message while the group cannot be created."""
    first = refusals[0]
    return (NAME_CONFLICT if first.conflict else CHILD_REJECTED), _message(refusals, now)
