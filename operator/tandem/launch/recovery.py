"""What the launcher tells about torchrun's in-place restarts, and the FailJob exit codes it keeps
out of them.

torchrun's agent restarts its training processes on its own (``--max-restarts``) and says so only
in its log. Tandem must count these restarts apart from its whole-group restarts, and must not
restart in place a failure a FailJob rule fails the job on. So the launcher, which runs the agent
in its own process (launch/torchrun.py), wraps two of the agent's methods:

- ``_monitor_workers``: its last result is kept, for the failure it names;
- ``_restart_workers``: after a failure, one line (contract.RECOVERY_LINE, then JSON) says which
  worker and rank failed, how, and how many seconds the restart took (stop, rendezvous, start);
  before that, a failure with an exit code of ``fail_job`` stops the processes and ends the agent
  with the failure (ChildFailedError) instead of restarting, so that the launcher exits with it
  and the failure rules see it.

A restart without a failure (a peer's agent came back to the rendezvous) prints nothing: it is the
peer's recovery, which that peer's launcher tells. The line is on stderr, beside the agent's log,
so the local executor reads it from the worker's output; on a cluster it is only in the pod's log,
so the same record is also handed to `tell` (launch/teller.py posts it to the figures gateway,
where the operator reads it). An elastic job's launcher also tells each rendezvous round's world
(`watch_world`) the same two ways. Which agent internals are used is pinned by the local tests that
kill a training process.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, Callable, Mapping, Optional, TextIO

from .._sys.exitcodes import exit_code
from ..contract import RECOVERY_LINE, WORLD_LINE


def recovery_record(worker: int, rank: int, code: int, reason: str, seconds: float, round_: int, at: float,
                    restart: int = 0) -> dict[str, Any]:
    """One in-place restart as JSON carries it (read by api.status.recovery_record): `restart` is
    the group (whole-group restart number), `round_` the rendezvous round it restarted into."""
    return {"worker": worker, "rank": rank, "exitCode": code, "reason": reason, "recovered": "InPlace",
            "seconds": round(seconds, 3), "round": round_, "failedAt": round(at, 3), "restart": restart}


def recovery_line(record: Mapping[str, Any]) -> str:
    """The line one in-place restart is told in (parsed by api.status.parse_recovery)."""
    return RECOVERY_LINE + json.dumps(record, sort_keys=True)


def first_failure(failures: Mapping[int, Any]) -> tuple[int, int, str]:
    """(global rank, exit code, reason) of the earliest failure torch's agent reported; a signal's
    death reads 128+N with the signal's name, as Kubernetes would say it."""
    rank = min(failures, key=lambda r: (failures[r].timestamp, r))
    returncode = int(failures[rank].exitcode)
    reason = failures[rank].signal_name() if returncode < 0 else "Error"
    return rank, exit_code(returncode), reason


def rendezvous_round(agent: Any, fallback: int) -> int:
    """The completed rendezvous round (the same number on every agent after one restart), read
    from torch's dynamic rendezvous handler; `fallback` where this torch keeps it elsewhere."""
    holder = getattr(agent._worker_group.spec.rdzv_handler, "_state_holder", None)
    state = getattr(holder, "state", None)
    value = getattr(state, "round", None)
    return value if isinstance(value, int) else fallback


def watch(agent_class: Any, failed_states: Any, child_failed: Callable[..., BaseException], worker: int,
          fail_job: tuple[int, ...], out: TextIO = sys.stderr,
          tell: Optional[Callable[[dict[str, Any]], None]] = None, restart_number: int = 0) -> None:
    """Wrap `agent_class`'s monitor and restart (see the module docstring). `failed_states`: the
    worker-group states after which the agent restarts for a failure; `child_failed`: torch's
    ChildFailedError, raised to end the agent on a FailJob exit code; `tell`: also given each
    record (never blocks); `restart_number`: the whole-group restart these restarts happen in."""
    monitor = agent_class._monitor_workers
    restart = agent_class._restart_workers

    def monitored(self: Any, group: Any) -> Any:
        result = monitor(self, group)
        self._tandem_last = (result, time.time())
        return result

    def restarted(self: Any, group: Any) -> None:
        last: Optional[tuple[Any, float]] = getattr(self, "_tandem_last", None)
        if group.state not in failed_states or last is None or not last[0].failures:
            restart(self, group)
            return
        result, at = last
        rank, code, reason = first_failure(result.failures)
        if code in fail_job:
            self._stop_workers(group)
            raise child_failed(name=group.spec.get_entrypoint_name(), failures=result.failures)
        started = time.monotonic()
        restart(self, group)
        seconds = time.monotonic() - started
        done = group.spec.max_restarts - self._remaining_restarts
        record = recovery_record(worker, rank, code, reason, seconds, rendezvous_round(self, done), at, restart_number)
        print(recovery_line(record), file=out, flush=True)
        if tell is not None:
            tell(record)

    agent_class._monitor_workers = monitored
    agent_class._restart_workers = restarted


def world_record(round_: int, nodes: int, world_size: int, restart: int = 0) -> dict[str, int]:
    """One rendezvous round's world as JSON carries it (figures.snapshot.world_fields checks it):
    `restart` is the group the round belongs to, so that the newest round is (restart, round)'s largest."""
    return {"round": round_, "nodes": nodes, "worldSize": world_size, "restart": restart}


def world_line(record: Mapping[str, Any]) -> str:
    """The line one rendezvous round is told in (local/elastic.py parses it)."""
    return WORLD_LINE + json.dumps(record, sort_keys=True)


def watch_world(agent_class: Any, out: TextIO = sys.stderr, tell: Optional[Callable[[dict[str, Any]], None]] = None,
                restart_number: int = 0) -> None:
    """Wrap `agent_class`'s ``_initialize_workers`` (rendezvous, then start the processes) so that
    each round's world is told: an elastic job's world size changes with the agents that joined
    (--nnodes=MIN:MAX), and only the agent knows it. The world size is the number of training
    processes (nodes x procs per node), as torch's WORLD_SIZE. `tell`: also given each record
    (never blocks), for status.worldSize on a cluster, where the line is only in the pod's log."""
    initialize = agent_class._initialize_workers

    def initialized(self: Any, group: Any) -> None:
        initialize(self, group)
        workers = list(getattr(group, "workers", None) or [])
        nodes = getattr(group, "group_world_size", None)
        if workers and isinstance(nodes, int):
            record = world_record(rendezvous_round(self, 0), nodes, int(workers[0].world_size), restart_number)
            print(world_line(record), file=out, flush=True)
            if tell is not None:
                tell(record)

    agent_class._initialize_workers = initialized
