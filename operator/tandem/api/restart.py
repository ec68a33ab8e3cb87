"""The restart decision: a failed (or hung) group, the restarts so far and runPolicy in, what
happens next out. Pure, and the one place either executor decides it (controller/policy/failure.py
and local/executor.py), so that one spec restarts, or fails, the same on both.

The failure rules (failure_rules.py) give the action: FailJob fails the job now, Ignore restarts
the group without counting it, Count restarts it counted while fewer than backoffLimit counted
restarts were spent, and fails the job (BackoffLimitExceeded) after that. The words each outcome
is told in are written here too, so that `tandem run` and the Restarting or Failed condition say
the same.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..contract import REASON_BACKOFF_LIMIT_EXCEEDED, REASON_ERROR, REASON_FAILED_BY_RULE
from .failure_rules import Failure, Verdict, judge
from .model import RunPolicy


@dataclass(frozen=True)
class Restarts:
    """Whole-group restarts so far: all of them, and those a rule with action Ignore let go. Only
    the rest count against backoffLimit (status.restarts and status.ignoredRestarts)."""

    total: int = 0
    ignored: int = 0

    @property
    def counted(self) -> int:
        return self.total - self.ignored


@dataclass(frozen=True)
class RestartDecision:
    """What a failure leads to. `after` is the restarts once it is carried out (unchanged when the
    job fails); `reason` is the Failed condition's, empty for a restart."""

    verdict: Verdict
    restart: bool
    reason: str
    before: Restarts
    after: Restarts
    limit: int

    def describe(self) -> str:
        """The outcome in words, for after the failure's own message."""
        cite = self.verdict.cite()
        if self.verdict.action == "FailJob":
            return f"{cite} says FailJob: not restarted"
        if self.verdict.action == "Ignore":
            return f"{cite} says Ignore: restarting all workers, not counted ({self.after.counted}/{self.limit})"
        if self.restart:
            return f"restarting all workers ({self.after.counted}/{self.limit})"
        ignored = self.before.ignored
        also = f" (and {ignored} not counted)" if ignored else ""
        return f"backoffLimit {self.limit} reached after {self.before.counted} restarts{also}"


def decide_restart(failure: Failure, policy: RunPolicy, so_far: Restarts) -> RestartDecision:
    """Judge `failure` by the failure rules and apply backoffLimit to the verdict."""
    verdict = judge(failure, policy.failure_policy)
    limit = policy.backoff_limit
    if verdict.action == "FailJob":
        return RestartDecision(verdict, False, REASON_FAILED_BY_RULE, so_far, so_far, limit)
    if verdict.action == "Ignore":
        after = Restarts(so_far.total + 1, so_far.ignored + 1)
        return RestartDecision(verdict, True, "", so_far, after, limit)
    if so_far.counted < limit:
        return RestartDecision(verdict, True, "", so_far, Restarts(so_far.total + 1, so_far.ignored), limit)
    return RestartDecision(verdict, False, REASON_BACKOFF_LIMIT_EXCEEDED, so_far, so_far, limit)


#: The exit codes a process can end with, as the shell and Kubernetes report them.
EXIT_CODES = range(256)


def fail_job_exit_codes(policy: RunPolicy) -> tuple[int, ...]:
    """The exit codes on which the failure rules fail the job at once (FailJob), for a worker that
    exited with one (reason Error). With in-place restarts the launcher is told them, so that it
    hands such a failure to the rules instead of restarting it in place: FailJob stays immediate.
    Rules on pod conditions or reasons other than Error cannot match a process that merely
    exited, so the exit code alone decides here."""
    return tuple(code for code in EXIT_CODES if code and
                 judge(Failure(worker=None, exit_code=code, reason=REASON_ERROR), policy.failure_policy).action
                 == "FailJob")
