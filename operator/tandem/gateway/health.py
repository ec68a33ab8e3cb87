"""Per job, how the gateway's intake of its records has gone: when it last stored a batch, when a
store last failed, and since when this process knows. Pure but for its lock; the clock is given.

The hang clock (figures/progress.py) pauses while a job's figures cannot be read, but reads can
succeed while POSTs fail (the job's Ray collector erring on stores, a gateway that restarted
between two reads): the figures then stand still although the job steps, and the shippers, once
the gateway takes records again, are still in their backoff. With these moments in every
snapshot the reader can tell, and restart the clock after an interrupted intake as after a
failed read. They are ages ("seconds ago", measured here at the read), so no two clocks are
compared.
"""

from __future__ import annotations

import collections
import threading
from typing import Hashable, Optional

#: Jobs remembered: past it the least recently seen is forgotten. A forgotten job's next read
#: shows no failure, as a job that has had none; at worst one interrupted intake goes unseen by
#: a job among more than this many at once.
JOBS_TRACKED = 10_000


class Intake:
    """When each job's records were last stored (`ok`) and last failed to be (`failed`)."""

    def __init__(self, now: float, jobs: int = JOBS_TRACKED):
        self.started = now
        self.jobs = jobs
        self._lock = threading.Lock()
        self._moments: collections.OrderedDict[Hashable, list[Optional[float]]] = collections.OrderedDict()

    def _mark(self, job: Hashable, which: int, now: float) -> None:
        with self._lock:
            moments = self._moments.pop(job, None) or [None, None]
            moments[which] = now
            self._moments[job] = moments  # last: the most recently seen
            while len(self._moments) > self.jobs:
                self._moments.popitem(last=False)

    def ok(self, job: Hashable, now: float) -> None:
        self._mark(job, 0, now)

    def failed(self, job: Hashable, now: float) -> None:
        self._mark(job, 1, now)

    def ages(self, job: Hashable, now: float) -> dict[str, float]:
        """What a snapshot carries (figures/wire.py): seconds since the job's last stored batch
        (okAgo) and last failed store (failedAgo), each left out when there was none, and since this
        process began to count (upAgo: anything before may have failed unseen)."""
        with self._lock:
            ok, failed = self._moments.get(job) or (None, None)
        ages = {"upAgo": max(0.0, now - self.started)}
        if ok is not None:
            ages["okAgo"] = max(0.0, now - ok)
        if failed is not None:
            ages["failedAgo"] = max(0.0, now - failed)
        return ages
