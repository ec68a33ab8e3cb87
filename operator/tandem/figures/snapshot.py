"""A collector snapshot, checked: only bounded, well-formed step records go on to the maths.

The snapshot comes from the job's Ray actor, which the job's own code can reach and feed, so
nothing in it is trusted. A record or key that is malformed is dropped on its own (and counted
in the returned `dropped` list, which becomes status.metrics.reason) rather than failing the
whole read: one bad figure must not hide the good ones, and must never reach status.

Accepted: keys "<worker>/<rank>" with worker in 0..workers-1 and rank in 0..MAX_RANKS-1;
records that figures/record.py decodes (finite, non-negative numbers), at most MAX_RECORDS per
rank (the newest); totals finite non-negative integers; each rank's `info` (its latest word
besides its steps) a mapping of at most the INFO_FIELDS, each a finite non-negative number within
its bound; the gateway's "ingest" ages (INGEST_AGES) finite, non-negative numbers of seconds;
`recoveries`, the launchers' in-place restart records, at most MAX_TOLD (the newest), each
checked by `recovery_fields` (as the gateway checks a POST of one: figures/wire.py), of a worker
within the spec; `world`, the newest rendezvous round's world an elastic job's launchers told, or
null, checked by `world_fields`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Optional

from ..api.status import Told, recovery_record
from ..contract import MAX_WORKERS
from .record import Step, decode, number
from .summary import MAX_STEPS, RankInfo, RankKey

#: Ranks (training processes) per worker: far above any machine's accelerator count.
MAX_RANKS = 1024
#: Records per rank looked at: the summary uses at most MAX_STEPS of them anyway.
MAX_RECORDS = MAX_STEPS
#: Largest count or total accepted; bigger means a broken or hostile reporter.
MAX_COUNT = 10**15
#: Most GPUs one worker may say it has (NVML on the largest machines sees 16).
MAX_GPUS = 1024
#: In-place restart records looked at: as many as a collector keeps (gateway/collector.py KEEP_RECOVERIES).
MAX_TOLD = 256
#: The wire names of a rank's info, the RankInfo field each fills, and its largest value.
INFO_FIELDS: dict[str, tuple[str, float]] = {
    "stepsDone": ("steps_done", MAX_COUNT),
    "stepsTotal": ("steps_total", MAX_COUNT),
    "gpus": ("gpus", MAX_GPUS),
    "gpuUtil": ("gpu_utilization", 100),
    "gpuMemUsed": ("gpu_memory_used", MAX_COUNT),
    "gpuMemTotal": ("gpu_memory_total", MAX_COUNT),
}


#: The ages an "ingest" mapping may carry (gateway/health.py), in seconds.
INGEST_AGES = ("okAgo", "failedAgo", "upAgo")
#: Largest age accepted: some 30 years.
MAX_AGE = 1e9
#: Largest counts and seconds a recovery record may carry (rendezvous rounds, group restarts, exit codes).
MAX_RECOVERY_COUNT = 1 << 31
MAX_RECOVERY_SECONDS = 1e7
#: The reason is a signal's name or Error: short.
MAX_REASON = 64
_RECOVERY_KEYS = {"worker", "rank", "exitCode", "reason", "recovered", "seconds", "round", "failedAt", "restart"}
_WORLD_KEYS = {"round", "nodes", "worldSize", "restart"}


@dataclass
class Checked:
    records: dict[RankKey, list[Step]] = field(default_factory=dict)
    totals: dict[RankKey, int] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)
    info: dict[RankKey, RankInfo] = field(default_factory=dict)
    #: How the gateway's stores of the job went: INGEST_AGES, those it gave.
    ingest: dict[str, float] = field(default_factory=dict)
    #: The launchers' in-place restart records, as api/recoveries.py counts them.
    recoveries: list[Told] = field(default_factory=list)
    #: The world size of the newest rendezvous round told (an elastic job's), or None.
    world_size: Optional[int] = None

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


def info(raw: Any) -> RankInfo:
    """A RankInfo from a rank's info mapping; raises ValueError if anything in it is not well-formed.
    Counts must be integers; the utilisation any number in 0..100."""
    if not isinstance(raw, dict) or len(raw) > len(INFO_FIELDS) or not set(raw) <= set(INFO_FIELDS):
        raise ValueError(f"info must be a mapping of {', '.join(INFO_FIELDS)}")
    fields: dict[str, Any] = {}
    for name, value in raw.items():
        attribute, bound = INFO_FIELDS[name]
        kind = "a number" if name == "gpuUtil" else "an integer"
        try:
            checked = number(value)
        except ValueError:
            raise ValueError(f"info {name} must be {kind} in 0..{bound:g}") from None
        if checked > bound or (name != "gpuUtil" and not isinstance(value, int)):
            raise ValueError(f"info {name} must be {kind} in 0..{bound:g}")
        fields[attribute] = checked if name == "gpuUtil" else int(value)
    return RankInfo(**fields)


def ingest(raw: Any, dropped: list[str]) -> dict[str, float]:
    """The well-formed ages of an "ingest" mapping; anything else is named in `dropped`."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        dropped.append("ingest: not a mapping")
        return {}
    ages: dict[str, float] = {}
    for name, value in raw.items():
        try:
            age = number(value) if name in INGEST_AGES else None
        except ValueError:
            age = None
        if age is None or age > MAX_AGE:
            dropped.append(f"ingest {str(name)[:20]}")
        else:
            ages[name] = age
    return ages


def _count(value: Any, limit: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
        raise ValueError(f"{what} must be an integer in 0..{limit}")
    return value


def _seconds(value: Any, limit: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= limit:
        raise ValueError(f"{what} must be a number in 0..{limit:g}")
    return float(value)


def recovery_fields(document: Any) -> dict[str, Any]:
    """One in-place restart record with every field checked and bounded (the gateway checks a POST
    with it, the operator checks the snapshot's records with it again); raises ValueError."""
    if not isinstance(document, dict) or set(document) != _RECOVERY_KEYS:
        raise ValueError(f"a recovery must be an object of exactly {', '.join(sorted(_RECOVERY_KEYS))}")
    reason = document["reason"]
    if not isinstance(reason, str) or not reason or len(reason) > MAX_REASON or not reason.isprintable():
        raise ValueError(f"reason must be printable text of 1..{MAX_REASON} characters")
    if document["recovered"] != "InPlace":
        raise ValueError("recovered must be InPlace")
    return {
        "worker": _count(document["worker"], MAX_WORKERS - 1, "worker"),
        "rank": _count(document["rank"], MAX_RECOVERY_COUNT, "rank"),
        "exitCode": _count(document["exitCode"], 255, "exitCode"),
        "reason": reason,
        "recovered": "InPlace",
        "seconds": _seconds(document["seconds"], MAX_RECOVERY_SECONDS, "seconds"),
        "round": _count(document["round"], MAX_RECOVERY_COUNT, "round"),
        "failedAt": _seconds(document["failedAt"], 1e11, "failedAt"),
        "restart": _count(document["restart"], MAX_RECOVERY_COUNT, "restart"),
    }


def _within(mapping: Any, workers: int) -> Iterator[tuple[RankKey, str, Any]]:
    """(key, "worker/rank", value) of a per-rank mapping of the snapshot, for the keys within the
    spec's workers (the others are counted once, with the records)."""
    for text, raw in (mapping if isinstance(mapping, dict) else {}).items():
        key = rank_key(text, workers)
        if key is not None:
            yield key, text, raw


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
        steps: list[Step] = []
        bad = 0
        for record in list(raw)[-MAX_RECORDS:]:
            try:
                steps.append(decode(record))
            except ValueError:
                bad += 1
        if bad:
            checked.dropped.append(f"{bad} record(s) of {text}")
        if steps:
            checked.records[key] = steps
    if outside:
        checked.dropped.append(f"{outside} key(s) outside workers 0..{workers - 1}")
    for key, text, raw in _within(snapshot.get("info"), workers):
        try:
            checked.info[key] = info(raw)
        except ValueError:
            checked.dropped.append(f"info of {text}")
    checked.ingest = ingest(snapshot.get("ingest"), checked.dropped)
    for key, text, raw in _within(snapshot.get("totals"), workers):
        if isinstance(raw, int) and not isinstance(raw, bool) and 0 <= raw <= MAX_COUNT:
            checked.totals[key] = raw
        else:
            checked.dropped.append(f"total of {text}")
    checked.recoveries, bad = recoveries(snapshot.get("recoveries"), workers)
    if bad:
        checked.dropped.append(f"{bad} recovery record(s)")
    checked.world_size = world_size(snapshot.get("world"), checked.dropped)
    return checked


def world_fields(document: Any) -> dict[str, int]:
    """One rendezvous round's world as a launcher tells it (launch/recovery.py world_record),
    checked; raises ValueError. At most MAX_WORKERS nodes, each of at most MAX_RANKS processes."""
    if not isinstance(document, dict) or set(document) != _WORLD_KEYS:
        raise ValueError(f"a world must be an object of exactly {', '.join(sorted(_WORLD_KEYS))}")
    nodes = _count(document["nodes"], MAX_WORKERS, "nodes")
    return {"round": _count(document["round"], MAX_RECOVERY_COUNT, "round"), "nodes": nodes,
            "worldSize": _count(document["worldSize"], max(nodes, 1) * MAX_RANKS, "worldSize"),
            "restart": _count(document["restart"], MAX_RECOVERY_COUNT, "restart")}


def world_size(raw: Any, dropped: list[str]) -> Optional[int]:
    """The world size of a snapshot's world (None without one); a malformed world is named in
    `dropped`. Not held against spec.workers: after a scale-down the newest round may still be one
    of more nodes, until the removed pods' loss makes the next."""
    if raw is None:
        return None
    try:
        fields = world_fields(raw)
    except ValueError:
        dropped.append("world")
        return None
    return fields["worldSize"]


def recoveries(raw: Any, workers: int) -> tuple[list[Told], int]:
    """The well-formed in-place restart records of a snapshot (the newest MAX_TOLD), and how many were not."""
    told: list[Told] = []
    bad = 0
    for item in (list(raw)[-MAX_TOLD:] if isinstance(raw, list) else []):
        try:
            fields = recovery_fields(item)
        except ValueError:
            bad += 1
            continue
        read = recovery_record(fields) if fields["worker"] < workers else None
        if read is None:
            bad += 1
        else:
            told.append(read)
    return told, bad
