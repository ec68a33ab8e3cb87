"""An elastic local run (`tandem run --workers MIN:MAX`): a lost worker is replaced and rejoins,
as the Job controller recreates a lost pod for its index on a cluster.

When a worker's launcher exits with a failure, its peers' training processes fail too (their
collective is broken) and their torchrun agents restart them in place, re-rendezvousing without
it (--nnodes=MIN:MAX takes as few as MIN). Once they have (their launchers tell the in-place
restart), the runner starts a replacement for the lost index; its agent joins the rendezvous and
the others' agents take it in with one more round (a membership change, which spends no
in-place restart). So the run shrinks and grows back instead of restarting the group.

Not replaced, the failure goes to the whole-group restart as in a fixed-size run: worker 0 (its
agent hosts the rendezvous store: the others cannot go on without it), fewer than minWorkers
left, an exit code a FailJob rule names, or more rejoins in one group than
runPolicy.inPlaceRestarts (a worker that fails again and again is not a lost one).

Pure bookkeeping; the executor starts and watches the processes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Optional

from ..api.model import TrainingJobSpec
from ..api.restart import fail_job_exit_codes
from ..contract import WORLD_LINE

#: Seconds a lost worker's replacement waits for the others to have restarted without it, at
#: most: should they not fail (no collective under way), it is started anyway.
REJOIN_WAIT_SECONDS = 60.0


def parse_world(line: str) -> Optional[tuple[int, int, int]]:
    """(round, nodes, world size) of a launcher's rendezvous line (launch/recovery.py world_line);
    None for any other line."""
    start = line.find(WORLD_LINE)
    if start < 0:
        return None
    try:
        data = json.loads(line[start + len(WORLD_LINE):])
        return int(data["round"]), int(data["nodes"]), int(data["worldSize"])
    except (ValueError, TypeError, KeyError):
        return None


@dataclass
class ElasticRun:
    """The worker range of a run and what happened to it: desired and min (the spec), the lost
    workers waiting for their replacement, the rejoins, and each rendezvous round's world."""

    minimum: int
    desired: int
    maximum: int
    budget: int
    fail_job: tuple[int, ...] = ()
    #: Lost worker index -> (in-place restarts told when it was lost, monotonic time of the loss).
    pending: dict[int, tuple[int, float]] = field(default_factory=dict)
    rejoins: int = 0
    rejoins_in_group: int = 0
    #: (round, nodes, world size) of each rendezvous round told, in order, one entry per round.
    worlds: list[tuple[int, int, int]] = field(default_factory=list)

    @classmethod
    def of(cls, spec: TrainingJobSpec) -> Optional[ElasticRun]:
        if not spec.elastic:
            return None
        return cls(spec.min_worker_count, spec.worker_count, spec.max_worker_count,
                   spec.run_policy.in_place_restarts, fail_job_exit_codes(spec.run_policy))

    def new_group(self) -> None:
        self.pending.clear()
        self.rejoins_in_group = 0

    def may_rejoin(self, index: int, code: int, alive: int) -> bool:
        """Whether a worker that exited with `code`, `alive` others still running, is replaced."""
        return (index != 0 and alive >= self.minimum and code not in self.fail_job
                and self.rejoins_in_group < self.budget)

    def lost(self, index: int, in_place_told: int, now: float) -> None:
        self.pending[index] = (in_place_told, now)
        self.rejoins_in_group += 1

    def due(self, in_place_told: int, now: float) -> list[int]:
        """The lost workers to start again now: the others told an in-place restart since the
        loss (they run without it), or the wait is over. Each is taken off `pending`."""
        ready = [index for index, (told, at) in self.pending.items()
                 if in_place_told > told or now - at >= REJOIN_WAIT_SECONDS]
        for index in ready:
            del self.pending[index]
            self.rejoins += 1
        return ready

    def told(self, world: tuple[int, int, int]) -> None:
        """A launcher's rendezvous line: every agent tells the same round, kept once."""
        if not self.worlds or self.worlds[-1][0] != world[0]:
            self.worlds.append(world)

    @property
    def world_size(self) -> Optional[int]:
        """The world size the training processes run with now (the latest round's)."""
        return self.worlds[-1][2] if self.worlds else None

    def summary(self) -> str:
        """desired, the range, rejoins and the world size of each round: shrink and grow, as seen."""
        sizes = " -> ".join(str(world) for _round, _nodes, world in self.worlds) or "-"
        return (f"elastic workers {self.minimum}..{self.maximum}: desired {self.desired}   rejoined: {self.rejoins}"
                f"   world size by round: {sizes}")
