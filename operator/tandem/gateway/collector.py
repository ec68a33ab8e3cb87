"""The per-job Ray actor that collects every rank's step records, and how to reach it.

One actor per job incarnation, named ``tandem:<namespace>/<job>/<uid>`` in the Ray namespace
``tandem``, detached (it outlives whichever process created it first; the local CLI stops the
whole Ray it started, the operator asks the gateway to delete it), and asking for no CPU. Only
the figures gateway (gateway/server.py), beside the Ray head, talks to it: the records it
hands over are checked already (figures/wire.py). It only stores records; the math lives in
`summary` and runs in the reader, so the actor needs nothing but Python: its class is shipped to
the Ray cluster by value, and a Ray head without Tandem installed can host it.

This module imports Ray only inside functions.
"""

from __future__ import annotations

import collections
import time
from typing import TYPE_CHECKING, Any, Optional, Sequence

if TYPE_CHECKING:
    from ray.actor import ActorClass

RAY_NAMESPACE = "tandem"
#: Records kept per rank: enough for the 30 s window at ~30 steps/s.
KEEP_PER_RANK = 2000
#: Records kept per job, all ranks together: what bounds a read's cost (a record is at most ~100
#: bytes of JSON, so ~10 MB), whatever a job's own code posts. A job of more than
#: JOB_RECORDS / KEEP_PER_RANK ranks keeps fewer, the newest, of each rank.
JOB_RECORDS = 100_000
#: Ranks kept per job (each also has a total, an age and an info): past it, the rank that
#: reported least recently is forgotten. Above MAX_WORKERS, so every worker of a job fits.
JOB_RANKS = 16_384
#: In-place restart records kept per job (the latest): each is one launcher's word about one
#: restart (a restart is told by every worker whose process failed in it), ~250 bytes of JSON.
KEEP_RECOVERIES = 256


def actor_name(namespace: str, job: str, uid: str) -> str:
    return f"tandem:{namespace}/{job}/{uid}"


class Collector:
    """Per-rank step records of one job, newest last: each a step as figures/record.py encodes it
    (checked by the gateway), kept as the plain tuple it is: the actor needs nothing of Tandem's."""

    def __init__(self, keep: int = KEEP_PER_RANK, budget: int = JOB_RECORDS, ranks: int = JOB_RANKS):
        self.keep = keep
        self.budget = budget
        self.ranks = ranks
        self.stored = 0
        self.records: dict[tuple[int, int], collections.deque[tuple[Optional[float], ...]]] = {}
        self.totals: dict[tuple[int, int], int] = {}
        self.seen: dict[tuple[int, int], float] = {}
        self.info: dict[tuple[int, int], dict[str, Any]] = {}
        #: Per rank, its shipper's stream and the number of the next record not yet applied.
        self.applied: dict[tuple[int, int], tuple[str, int]] = {}
        self.recoveries: collections.deque[dict[str, Any]] = collections.deque(maxlen=KEEP_RECOVERIES)
        #: The newest rendezvous round's world an elastic job's launchers told, or None.
        self.newest_world: Optional[dict[str, Any]] = None

    def report(self, worker: int, rank: int, records: list[Sequence[Optional[float]]],
               info: Optional[dict[str, Any]] = None, stream: Optional[str] = None,
               first: Optional[int] = None) -> int:
        """Add a rank's records (numbered from `first` in its shipper's `stream`, when given: those
        applied before are skipped); returns the rank's total."""
        key = (int(worker), int(rank))
        if key not in self.records and len(self.records) >= self.ranks:
            self._forget(next(iter(self.seen)))  # the rank that reported least recently
        if stream is not None and first is not None:
            records = self._unseen(key, records, stream, int(first))
        if info:
            self.info[key] = dict(info)  # the rank's latest word replaces its earlier one
        queue = self.records.setdefault(key, collections.deque(maxlen=self.keep))
        self.stored -= len(queue)
        queue.extend(tuple(r) for r in records)
        self.stored += len(queue)
        self.totals[key] = self.totals.get(key, 0) + len(records)
        self.seen.pop(key, None)
        self.seen[key] = time.time()  # last in order: `seen` runs from least to most recently reported
        if self.stored > self.budget:
            self._trim()
        return self.totals[key]

    def _unseen(self, key: tuple[int, int], records: list[Sequence[Optional[float]]], stream: str,
                first: int) -> list[Sequence[Optional[float]]]:
        """The records of a numbered batch not applied before. A shipper whose POST was applied but
        whose answer was lost sends those records again, with any added since; a new stream (the
        shipper started again) starts afresh. One stream name and number per rank: bounded memory."""
        known, upto = self.applied.get(key, (stream, 0))
        skip = max(0, upto - first) if known == stream else 0
        self.applied[key] = (stream, max(upto if known == stream else 0, first + len(records)))
        return records[skip:]

    def recovered(self, record: dict[str, Any]) -> int:
        """Keep one in-place restart record (checked by the gateway: figures/wire.py); the oldest
        goes past KEEP_RECOVERIES. The operator counts restarts from them (api/recoveries.py)."""
        self.recoveries.append(dict(record))
        return len(self.recoveries)

    def world(self, record: dict[str, Any]) -> bool:
        """Keep one rendezvous round's world (checked by the gateway: figures/wire.py) if its round is
        the newest: (restart, round) at least the kept one's. Every launcher of a round tells the
        same world, and a post retried after an outage may arrive after a later round's: the order
        of arrival says nothing. True when kept."""
        def newness(told: dict[str, Any]) -> tuple[int, int]:
            return int(told["restart"]), int(told["round"])

        if self.newest_world is not None and newness(record) < newness(self.newest_world):
            return False
        self.newest_world = dict(record)
        return True

    def _forget(self, key: tuple[int, int]) -> None:
        self.stored -= len(self.records.pop(key, ()))
        self.totals.pop(key, None)
        self.seen.pop(key, None)
        self.info.pop(key, None)
        self.applied.pop(key, None)

    def _trim(self) -> None:
        """Keep each rank's newest budget/(2 ranks) records: half the budget, so the next pass is
        budget/2 records away (a pass costs one look at every rank). Not thinned: the summary adds
        the samples of consecutive steps, so what a rank keeps must be a run of its newest."""
        share = max(1, self.budget // (2 * len(self.records)))
        for queue in self.records.values():
            while len(queue) > share:
                queue.popleft()
                self.stored -= 1

    def snapshot(self) -> dict[str, Any]:
        """Everything kept, as plain lists (keys "worker/rank"), and seconds since each rank's last report."""
        now = time.time()
        return {
            "records": {f"{w}/{r}": list(q) for (w, r), q in self.records.items()},
            "totals": {f"{w}/{r}": n for (w, r), n in self.totals.items()},
            "age": {f"{w}/{r}": now - t for (w, r), t in self.seen.items()},
            "info": {f"{w}/{r}": i for (w, r), i in self.info.items()},
            "recoveries": list(self.recoveries),
            "world": self.newest_world,
        }

    def reset(self) -> None:
        self.stored = 0
        self.records.clear()
        self.totals.clear()
        self.seen.clear()
        self.info.clear()
        self.applied.clear()
        self.recoveries.clear()
        self.newest_world = None

    def ping(self) -> bool:
        return True


def _remote_class() -> ActorClass[Collector]:
    import ray
    from ray import cloudpickle

    # Ship Collector by value: the Ray worker that hosts it need not have Tandem installed.
    # cloudpickle is vendored without annotations.
    cloudpickle.register_pickle_by_value(__import__(__name__, fromlist=["Collector"]))  # type: ignore[no-untyped-call]
    return ray.remote(num_cpus=0, max_restarts=0)(Collector)


def get_or_create(namespace: str, job: str, uid: str) -> Any:
    """The job's actor handle (creating it if needed). The caller must be connected to Ray.
    Any: Ray types an actor's methods only where they are declared with @ray.method."""
    cls = _remote_class()
    try:
        return cls.options(
            name=actor_name(namespace, job, uid), namespace=RAY_NAMESPACE, get_if_exists=True, lifetime="detached"
        ).remote()
    except Exception as creating:  # noqa: BLE001 - Ray's error types differ between client and driver mode
        # Two drivers creating the actor at the same moment: through the Ray client, get_if_exists
        # does not cover that race and the loser is told the name is taken. The winner's actor is
        # the one to use. (The gateway creates collectors under a lock, so it meets this only
        # when an earlier gateway process created the actor.)
        try:
            return lookup(namespace, job, uid)
        except Exception:  # noqa: BLE001 - no actor after all: the creation error is the one to report
            raise creating from None


def lookup(namespace: str, job: str, uid: str) -> Any:
    """The job's actor handle; raises ValueError when there is none."""
    import ray

    return ray.get_actor(actor_name(namespace, job, uid), namespace=RAY_NAMESPACE)
