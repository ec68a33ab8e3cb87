"""B6's figures, from what a run recorded: rank 0's stamped step lines (benchmarks/stamp.py) in
the run's worker logs. Pure (text in, figures out), so that the maths is unit-tested in
milliseconds (tests/unit/test_goodput.py) apart from the runs that take minutes.

A run is cut into *lives*: each start of the training processes (the first, and each after a
failure: a group restart, an in-place restart, a resume after preemption) is one life. A life that
loaded a checkpoint says so first (``rank 0: resumed from step X``), and its steps go on from X.

- **seconds to the first step**: from the failure (the stamp of the injected crash's own line, or
  the moment the benchmark sent SIGTERM) to rank 0's first step of the next life; all of the
  recovery a user waits through: stop, restart, imports, rendezvous, checkpoint load, first step.
- **steps lost**: the last step rank 0 reached in the failed life less the step the next life
  resumed from: steps trained twice (after a crash: those since the last checkpoint) or, after a
  preemption, trained and not saved.
- **productive step time**: each step of the final model counted once, in the life that trained
  it last, as the time from the step before it in that life; a life's first step (nothing before
  it to measure from) counts the life's median step time. Goodput = productive step time / the
  scenario's wall time (every `tandem run` of it, start to end).

Imports nothing from Tandem, as the other benchmark helpers.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterable, Optional

STAMPED = re.compile(r"@@T (\d+\.\d+) rank 0: (.*)")
STEP = re.compile(r"step (\d+)/(\d+)\b")
RESUMED = re.compile(r"resumed from step (\d+)")
CRASH = re.compile(r"@@T (\d+\.\d+) rank \d+: injected crash at step (\d+)")


@dataclass
class Life:
    """One start of the training processes: the step it resumed from and its steps' stamps."""

    resumed_from: int = 0
    steps: dict[int, float] = field(default_factory=dict)

    @property
    def started(self) -> float:
        return min(self.steps.values(), default=float("inf"))

    @property
    def reached(self) -> int:
        return max(self.steps, default=self.resumed_from)

    def step_seconds(self) -> dict[int, float]:
        """Each step's time from the step before it in this life; the first at the life's median."""
        ordered = sorted(self.steps)
        gaps = {k: self.steps[k] - self.steps[k - 1] for k in ordered if k - 1 in self.steps}
        if not ordered:
            return {}
        typical = statistics.median(gaps.values()) if gaps else 0.0
        return {k: gaps.get(k, typical) for k in ordered}


def lives(lines: Iterable[str]) -> list[Life]:
    """Rank 0's lives from the stamped lines of every worker log of a run (any order: sorted by
    stamp). A new life starts at a ``resumed from`` line, or where the step count goes back
    (a restart with no checkpoint)."""
    events: list[tuple[float, str]] = []
    for line in lines:
        m = STAMPED.search(line)
        if m:
            events.append((float(m.group(1)), m.group(2)))
    events.sort()
    found: list[Life] = [Life()]
    for at, text in events:
        resumed = RESUMED.match(text)
        if resumed:
            found.append(Life(resumed_from=int(resumed.group(1))))
            continue
        step = STEP.match(text)
        if not step:
            continue
        k = int(step.group(1))
        if found[-1].steps and k <= max(found[-1].steps):
            found.append(Life())
        found[-1].steps[k] = at
    return [life for life in found if life.steps or life.resumed_from]


def runtime_stamped(line: str) -> str:
    """A line of `kubectl logs --timestamps` (the container runtime's RFC 3339 stamp with
    nanoseconds, taken when the line was written) in stamp.py's form, so that pods and local runs
    go through the same figures."""
    stamp, _, text = line.partition(" ")
    head, _, fraction = stamp.rstrip("Z").partition(".")
    seconds = datetime.fromisoformat(head + "+00:00").timestamp() + float("0." + (fraction or "0"))
    return f"@@T {seconds:.6f} {text}"


def crash_time(lines: Iterable[str]) -> Optional[tuple[float, int]]:
    """(stamp, step) of the injected crash's own line (jobs/train_ddp.py --crash-at-step)."""
    for line in lines:
        m = CRASH.search(line)
        if m:
            return float(m.group(1)), int(m.group(2))
    return None


@dataclass(frozen=True)
class Figures:
    """One scenario's figures; the recovery fields are None for a run without a failure."""

    steps: int
    productive_seconds: float
    wall_seconds: float
    seconds_to_first_step: Optional[float] = None
    reached: Optional[int] = None
    resumed_from: Optional[int] = None

    @property
    def steps_lost(self) -> Optional[int]:
        if self.reached is None or self.resumed_from is None:
            return None
        return self.reached - self.resumed_from

    @property
    def goodput(self) -> float:
        return self.productive_seconds / self.wall_seconds if self.wall_seconds > 0 else float("nan")


def figures(found: list[Life], wall_seconds: float, failed_at: Optional[float] = None) -> Figures:
    """The figures of a run's lives; `failed_at`: when the failure happened (epoch seconds)."""
    last_trained: dict[int, float] = {}
    for life in found:  # oldest first: a later life's time replaces an earlier one's
        last_trained.update(life.step_seconds())
    productive = sum(last_trained.values())
    if failed_at is None:
        return Figures(len(last_trained), productive, wall_seconds)
    before = [life for life in found if life.started <= failed_at]
    after = [life for life in found if life.steps and life.started > failed_at]
    if not before or not after:
        raise ValueError(f"no life before and after the failure at {failed_at:.3f} ({len(found)} lives)")
    failed, recovered = before[-1], after[0]
    return Figures(len(last_trained), productive, wall_seconds, recovered.started - failed_at,
                   failed.reached, recovered.resumed_from)
