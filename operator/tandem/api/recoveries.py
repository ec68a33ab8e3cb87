"""The failures of a job and how each was recovered: in place (torchrun's agents) or by a
whole-group restart; status.inPlaceRestarts and status.recoveries are drawn from it.

One failure of a training process can be told by several launchers: the worker whose process died,
and each peer whose process then failed in the broken collective. They all restart into the same
rendezvous round, so one round of one group is one in-place restart, told by its earliest failure
(the root cause; a peer's failure comes after it). Pure, so that it is tested in milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .status import MAX_RECOVERIES, RecoveryStatus


@dataclass
class Recoveries:
    """In-place restarts counted once per (group, round), and the latest recoveries, oldest first."""

    in_place: int = 0
    latest: list[RecoveryStatus] = field(default_factory=list)
    #: Each in-place restart's record and the time of the failure it names, by (group, round).
    _rounds: dict[tuple[int, int], tuple[float, RecoveryStatus]] = field(default_factory=dict)

    def told_in_place(self, round_: int, at: float, record: RecoveryStatus) -> None:
        """One launcher's line: a new round counts; an earlier failure of a known round becomes its record."""
        key = (record.restart, round_)
        known = self._rounds.get(key)
        if known is None:
            self.in_place += 1
            self._rounds[key] = (at, record)
            self._keep(record)
        elif at < known[0]:
            kept = known[1]
            for name in RecoveryStatus.model_fields:
                setattr(kept, name, getattr(record, name))
            self._rounds[key] = (at, kept)

    def group_restart(self, record: RecoveryStatus) -> None:
        self._keep(record)

    def _keep(self, record: RecoveryStatus) -> None:
        self.latest = [*self.latest, record][-MAX_RECOVERIES:]
