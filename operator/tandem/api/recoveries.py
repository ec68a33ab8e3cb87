"""The failures of a job and how each was recovered: in place (torchrun's agents) or by a
whole-group restart; status.inPlaceRestarts and status.recoveries are drawn from it.

One failure of a training process can be told by several launchers: the worker whose process died,
and each peer whose process then failed in the broken collective. They all restart into the same
rendezvous round, so one round of one group is one in-place restart, told by its earliest failure
(the root cause; a peer's failure comes after it). Pure, so that it is tested in milliseconds.

`tandem run` tells one `Recoveries` every line as its workers print it. The operator reads the
lines' records back from the figures gateway, whose collector keeps only the latest, on every
read, so it starts from what status already holds (`from_status`): a round of a group at or
before the newest round status holds is counted already (or was, and has left the bounded list),
and only a later one counts again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Optional

from .status import MAX_RECOVERIES, RECOVERED_IN_PLACE, RECOVERED_REJOINED, RecoveryStatus, Told, parse_time


@dataclass
class Recoveries:
    """In-place restarts counted once per (group, round), and the latest recoveries, oldest first."""

    in_place: int = 0
    latest: list[RecoveryStatus] = field(default_factory=list)
    #: Each in-place restart's record and the time of the failure it names, by (group, round).
    _rounds: dict[tuple[int, int], tuple[float, RecoveryStatus]] = field(default_factory=dict)
    #: The newest (group, round) counted before this object saw any line (from_status): an older
    #: one not in _rounds was counted and has since left status's bounded list.
    _counted: Optional[tuple[int, int]] = None

    @classmethod
    def from_status(cls, in_place: int, kept: Iterable[RecoveryStatus]) -> Recoveries:
        """The count and the records status holds, to go on counting from."""
        recoveries = cls(in_place=in_place, latest=list(kept))
        for record in recoveries.latest:
            if record.recovered == RECOVERED_IN_PLACE and record.round is not None:
                key = (record.restart, record.round)
                recoveries._rounds[key] = (_epoch(record.time), record)
                recoveries._counted = max(recoveries._counted or key, key)
        return recoveries

    def told_in_place(self, round_: int, at: float, record: RecoveryStatus) -> bool:
        """One launcher's line: a new round counts (True); an earlier failure of a known round
        becomes its record."""
        key = (record.restart, round_)
        known = self._rounds.get(key)
        if known is None:
            if self._counted is not None and key <= self._counted:
                return False  # counted already; its record has left the bounded list
            self.in_place += 1
            self._rounds[key] = (at, record)
            self._keep(record)
            return True
        if at < known[0]:
            kept = known[1]
            for name in RecoveryStatus.model_fields:
                setattr(kept, name, getattr(record, name))
            self._rounds[key] = (at, kept)
        return False

    def told(self, lines: Iterable[Told]) -> list[RecoveryStatus]:
        """Many launchers' records, in the order of the failures they name; the new restarts' records."""
        fresh = []
        for round_, at, record in sorted(lines, key=lambda told: (told[2].restart, told[0], told[1])):
            if self.told_in_place(round_, at, record):
                fresh.append(record)
        return fresh

    def group_restart(self, record: RecoveryStatus) -> None:
        self._keep(record)

    def _keep(self, record: RecoveryStatus) -> None:
        self.latest = [*self.latest, record][-MAX_RECOVERIES:]


def _epoch(time: Optional[str]) -> float:
    """A status time in epoch seconds; 0 when unset or unreadable (then never replaced by a later word)."""
    try:
        at = parse_time(time)
    except ValueError:
        return 0.0
    return 0.0 if at is None else at.timestamp()


def recovery_text(record: RecoveryStatus) -> str:
    """`recovered in place in 3.2 s: worker 1 rank 1 exit 137 (SIGKILL), group #0`: the run table's
    line, `tandem get`'s and the operator's event's words for one recovery."""
    how = {RECOVERED_IN_PLACE: "in place", RECOVERED_REJOINED: "by a new pod that rejoined"}.get(
        record.recovered, "by a group restart")
    took = "" if record.seconds is None else f" in {record.seconds:.1f} s"
    rank = "" if record.rank is None else f" rank {record.rank}"
    code = "" if record.exit_code is None else f" exit {record.exit_code}"
    return f"recovered {how}{took}: worker {record.worker}{rank}{code} ({record.reason}), group #{record.restart}"
