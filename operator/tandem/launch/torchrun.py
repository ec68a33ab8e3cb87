"""torchrun, with its exit code made meaningful for Tandem.

Plain torchrun exits 1 for any worker failure and on a forwarded SIGTERM. Tandem reports the
failing worker's own exit code (the job's status names it) and 128+signal for a signal, so
this runs torchrun's ``main`` in-process and maps its two terminal exceptions. In-process, the
agent's in-place restarts are also told and kept from FailJob exit codes (recovery.py); the
launcher checked the TANDEM_* variables read here before it started this.

On SIGTERM torchrun's agent sends SIGTERM to its ranks, waits, then SIGKILLs them; by default it
waits 30 s, whatever the pod's grace period. Here it waits the job's grace period
(runPolicy.terminationGracePeriodSeconds, in TANDEM_TERMINATION_GRACE_SECONDS) less a margin for
itself to exit, so a rank saving a preemption checkpoint gets all the time the kubelet gives.

An in-place restart waits in torch's dynamic rendezvous for the other agents; torch polls its
state once a second there, so the first agent back waited up to a second for a peer already in.
Here a small group polls ten times a second (`rendezvous_poll_seconds`).

With in-place restarts the agent also starts the worker's warm interpreter (launch/warm.py), which
forks the restarted training processes with torch already imported.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any, Mapping, Optional, Protocol, Sequence, Union

from .._sys.exitcodes import exit_code, signalled
from ..contract import (
    ENV_FAIL_JOB_EXIT_CODES,
    ENV_MIN_WORKERS,
    ENV_RESTART,
    ENV_TERMINATION_GRACE,
    ENV_WARM_SOCKET,
    ENV_WORKER_INDEX,
    ENV_WORKERS,
    WORLD_PATH,
)
from . import recovery, warm
from .teller import Teller


def rank_by_worker_index(worker: int) -> None:
    """Make the rendezvous give group ranks in worker-index order, as the static rendezvous did.

    torch's dynamic rendezvous ranks its nodes by sorting their (address, agent pid, local id).
    Locally every worker's address is the same loopback, so the order would be the agents' pids,
    whichever launcher forked first. The pid is used for nothing else (logs, events), so the
    worker index stands in for it: ranks follow worker indices locally, and on a cluster (where
    the addresses, the pods' names, sort first) up to 10 workers, beyond which the names' text
    order decides (job-10 before job-2)."""
    from torch.distributed.elastic.rendezvous import dynamic_rendezvous as rendezvous

    class ByWorkerIndex(rendezvous._NodeDescGenerator):
        def generate(self, local_addr: str | None = None) -> Any:
            node = super().generate(local_addr)
            return rendezvous._NodeDesc(node.addr, worker, node.local_id)

    rendezvous.DynamicRendezvousHandler._node_desc_generator = ByWorkerIndex()


#: torch's dynamic rendezvous, while an agent waits for its peers, sleeps this many seconds between
#: two reads of the shared state (``_delay(seconds=1)``, its SYNC action), and between reads serves
#: the state from a cache of the same age (``_BackendRendezvousStateHolder``'s cache_duration).
TORCH_POLL_SECONDS = 1
#: The fastest poll: a tenth of a second, as torchrun's own monitor interval.
FASTEST_POLL_SECONDS = 0.1
#: The reads of the rendezvous state per second that a group's agents may make together at worker
#: 0's store (each agent reads once per poll, waiting or not: the monitor asks for waiting peers).
MAX_STATE_READS_PER_SECOND = 100


class Delay(Protocol):
    """torch's rendezvous delay, called with ``seconds=``: seconds, or (low, high) for a random one."""

    def __call__(self, seconds: Union[float, tuple[float, float]]) -> None: ...


def rendezvous_poll_seconds(workers: int) -> float:
    """How often an agent reads the rendezvous state. torch's second cost every in-place restart
    up to a second: the first agent back to the rendezvous sleeps a whole poll although its peer
    completes the round a moment later, and the training processes start only when it wakes. A
    tenth of a second for up to ten workers; a larger group polls more slowly so that its agents
    make at most MAX_STATE_READS_PER_SECOND reads together, and never more slowly than torch."""
    return min(float(TORCH_POLL_SECONDS), max(FASTEST_POLL_SECONDS, workers / MAX_STATE_READS_PER_SECOND))


def polled(delay: Delay, poll: float) -> Delay:
    """torch's rendezvous delay with its one fixed wait, the poll for peers, made `poll` seconds;
    the random ones ((low, high): a first round's skew, the backoff after a failed write) kept."""

    def wait(seconds: Union[float, tuple[float, float]]) -> None:
        delay(seconds=poll if seconds == TORCH_POLL_SECONDS else seconds)

    return wait


def poll_rendezvous_every(seconds: float) -> None:
    """Make torch's dynamic rendezvous read its state every `seconds`: both the sleep between the
    reads of an agent waiting for peers and the age of the cached state that a running agent's
    monitor asks for waiting peers (without the cache's, a shorter sleep would read the same
    stale state). The static rendezvous (no in-place restarts) has no poll."""
    from torch.distributed.elastic.rendezvous import dynamic_rendezvous as rendezvous

    rendezvous._delay = polled(rendezvous._delay, seconds)
    holder = rendezvous._BackendRendezvousStateHolder

    class Polled(holder):  # type: ignore[misc, valid-type]
        def __init__(self, backend: Any, settings: Any, cache_duration: float = seconds) -> None:
            super().__init__(backend, settings, cache_duration)

    rendezvous._BackendRendezvousStateHolder = Polled  # type: ignore[misc]


def fail_job_codes(env: Mapping[str, str]) -> tuple[int, ...]:
    return tuple(int(part) for part in env.get(ENV_FAIL_JOB_EXIT_CODES, "").split(",") if part.strip())


#: torch's own setting for how long its agent waits for ranks after a signal before SIGKILL.
TORCH_SHUTDOWN_TIMEOUT = "TORCH_ELASTIC_SHUTDOWN_TIMEOUT"
#: Seconds of the grace period kept for the agent and the launcher to exit after the ranks.
EXIT_MARGIN_SECONDS = 2


def shutdown_timeout(env: Mapping[str, str]) -> Optional[int]:
    """The agent's wait for its ranks after SIGTERM: the grace period less the margin; None
    (torch's default) without a grace period in the contract or with one set by the user."""
    text = env.get(ENV_TERMINATION_GRACE, "").strip()
    if TORCH_SHUTDOWN_TIMEOUT in env or not text.isdigit():
        return None
    return max(0, int(text) - EXIT_MARGIN_SECONDS)


def warm_after_first_start(agent_class: Any, socket_path: str) -> None:
    """Give the training processes that the agent starts after its first ones the warm
    interpreter's socket (launch/warm.py), so that their guards ask it to fork them; the first
    ones are exec'd as always (the server is still importing then). torch's own count in their
    environment (TORCHELASTIC_RESTART_COUNT) cannot tell: it counts the agent's own failures
    only, and an agent that restarts because a peer's process failed starts its processes at 0."""
    start = agent_class._start_workers

    def started(self: Any, group: Any) -> Any:
        try:
            return start(self, group)
        finally:  # torch copies the agent's environment into each process it starts
            os.environ[ENV_WARM_SOCKET] = socket_path

    agent_class._start_workers = started


def main(argv: Sequence[str]) -> int:
    """Run torchrun with ``argv``; return the root-cause worker's exit code."""
    from torch.distributed.elastic.agent.server.api import WorkerState
    from torch.distributed.elastic.agent.server.local_elastic_agent import LocalElasticAgent
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun_main

    worker = int(os.environ.get(ENV_WORKER_INDEX, "0").strip() or 0)
    rank_by_worker_index(worker)
    poll_rendezvous_every(rendezvous_poll_seconds(int(os.environ.get(ENV_WORKERS, "1").strip() or 1)))
    restart = int(os.environ.get(ENV_RESTART, "0").strip() or 0)
    teller = Teller.from_env(os.environ)
    recovery.watch(LocalElasticAgent, {WorkerState.FAILED, WorkerState.UNHEALTHY}, ChildFailedError, worker,
                   fail_job_codes(os.environ), tell=teller.tell if teller else None, restart_number=restart)
    world_teller = None
    if os.environ.get(ENV_MIN_WORKERS, "").strip():  # an elastic job's world changes: tell each round's
        world_teller = Teller.from_env(os.environ, WORLD_PATH)
        recovery.watch_world(LocalElasticAgent, tell=world_teller.tell if world_teller else None,
                             restart_number=restart)
    timeout = shutdown_timeout(os.environ)
    if timeout is not None:
        os.environ[TORCH_SHUTDOWN_TIMEOUT] = str(timeout)
    server = warm.start(os.environ) if warm.wanted(os.environ) else None
    if server is not None:
        warm_after_first_start(LocalElasticAgent, server.socket_path)
    try:
        return _run(torchrun_main, argv)
    finally:
        if server is not None:
            server.stop()
        for told in (teller, world_teller):
            if told is not None:
                told.flush()


def _run(torchrun_main: Any, argv: Sequence[str]) -> int:
    """torchrun's main, its two terminal exceptions turned into the root cause's exit code."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    try:
        torchrun_main(list(argv))
    except ChildFailedError as error:
        _rank, failure = error.get_first_failure()
        print(str(error), file=sys.stderr)
        code = exit_code(failure.exitcode)
        return code if code else 1
    except SignalException as error:
        print(f"tandem.launch.torchrun: stopped by {signal.Signals(error.sigval).name}", file=sys.stderr)
        return signalled(error.sigval)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
