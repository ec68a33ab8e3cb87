"""A collector snapshot, checked: only bounded, well-formed step records go on to the maths.

The snapshot comes from the job's Ray actor, which the job's own code can reach and feed, so
nothing in it is trusted. A record or key that is malformed is dropped on its own (and counted
in the returned `dropped` list, which becomes status.metrics.reason) rather than failing the
whole read: one bad figure must not hide the good ones, and must never reach status.

Accepted: keys "<worker>/<rank>" with worker in 0..workers-1 and rank in 0..MAX_RANKS-1;
records [t, samples, seconds, busy] whose numbers are finite, samples/seconds/busy non-negative
(seconds and busy may be None), at most MAX_RECORDS per rank (the newest); totals finite
non-negative integers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Optional

from .summary import MAX_STEPS, RankKey, Step

#: Ranks (training processes) per worker: far above any machine's accelerator count.
MAX_RANKS = 1024
#: Records per rank looked at: the summary uses at most MAX_STEPS of them anyway.
MAX_RECORDS = MAX_STEPS
#: Largest count or total accepted; bigger means a broken or hostile reporter.
MAX_COUNT = 10**15


@dataclass
class Checked:
    records: dict[RankKey, list[Step]] = field(default_factory=dict)
    totals: dict[RankKey, int] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)

    def reason(self) -> Optional[str]:
        """One line naming what was dropped, or None when nothing was."""
        if not self.dropped:
            return None
        shown = "; ".join(self.dropped[:5])
        more = f" (and {len(self.dropped) - 5} more)" if len(self.dropped) > 5 else ""
        return f"dropped malformed figures: {shown}{more}"[:1000]


def rank_key(text: Any, workers: int) -> Optional[RankKey]:
    """(worker, rank) of a "worker/rank" key, or None if malformed or outside the spec's workers."""
    if not isinstance(text, str) or len(text) > 32:
        return None
    worker, _, rank = text.partition("/")
    if not (worker.isdigit() and rank.isdigit()):
        return None
    key = int(worker), int(rank)
    return key if key[0] < workers and key[1] < MAX_RANKS else None


def _number(value: Any, optional: bool = False) -> Optional[float]:
    """A finite non-negative float; None when `optional` and absent; raises ValueError otherwise."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("not a number")
    try:
        number = float(value)
    except OverflowError:  # an integer past float's range
        raise ValueError("not a finite non-negative number") from None
    if not math.isfinite(number) or number < 0:
        raise ValueError("not a finite non-negative number")
    return number


def step(record: Any) -> Step:
    """A Step from one record; raises ValueError if it is not a well-formed one."""
    if not isinstance(record, (list, tuple)) or not 2 <= len(record) <= 4:
        raise ValueError("not a record")
    t, samples, seconds, busy = [*record, None, None][:4]
    return Step(_number(t) or 0.0, _number(samples) or 0.0, _number(seconds, optional=True),
                _number(busy, optional=True))


def check(snapshot: Any, workers: int) -> Checked:
    """The well-formed part of a collector snapshot; never raises."""
    checked = Checked()
    if not isinstance(snapshot, dict):
        checked.dropped.append("the snapshot is not a mapping")
        return checked
    records = snapshot.get("records")
    records = records if isinstance(records, dict) else {}
    outside = 0
    for text, raw in records.items():
        key = rank_key(text, workers)
        if key is None:
            outside += 1
            continue
        if not isinstance(raw, (list, tuple)):
            checked.dropped.append(f"records of {text}: not a list")
            continue
        steps, bad = [], 0
        for record in list(raw)[-MAX_RECORDS:]:
            try:
                steps.append(step(record))
            except ValueError:
                bad += 1
        if bad:
            checked.dropped.append(f"{bad} record(s) of {text}")
        if steps:
            checked.records[key] = steps
    if outside:
        checked.dropped.append(f"{outside} key(s) outside workers 0..{workers - 1}")
    totals = snapshot.get("totals")
    for text, raw in (totals if isinstance(totals, dict) else {}).items():
        key = rank_key(text, workers)
        if key is None:
            continue  # counted with the records above
        if isinstance(raw, int) and not isinstance(raw, bool) and 0 <= raw <= MAX_COUNT:
            checked.totals[key] = raw
        else:
            checked.dropped.append(f"total of {text}")
    return checked
