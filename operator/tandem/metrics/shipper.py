"""``python -m tandem.metrics.shipper``: the one process per rank that talks to Ray.

Started by the rank's `Reporter`, it reads JSON lines of step records on stdin, waits for the
Ray at TANDEM_METRICS_ADDRESS to come up (a local run starts Ray while the workers start, so the
first records are usually buffered here), connects, and every `SHIP_EVERY` seconds hands what it
has to the job's collector actor. On stdin's end (the training process exits) it ships the rest
within a bounded time and exits. When Ray cannot be reached, or is lost, it says so once on
stderr and exits; the reporter then drops records, and training goes on.

Ray's own (C++) log lines go to a file in the run directory or nowhere, never into the
training output.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
from typing import Iterable, Optional, TextIO
from urllib.parse import urlparse

from ..contract import (
    ENV_JOB,
    ENV_METRICS_ADDRESS,
    ENV_METRICS_CONNECT_TIMEOUT,
    ENV_METRICS_NICE,
    ENV_METRICS_PARENT,
    ENV_NAMESPACE,
    ENV_RUN_DIR,
    ENV_WORKER_INDEX,
)

SHIP_EVERY = 1.0
#: How long to wait for the metrics Ray to accept connections before giving up.
CONNECT_TIMEOUT = float(os.environ.get(ENV_METRICS_CONNECT_TIMEOUT, "120"))
CALL_TIMEOUT = 10.0
FIRST_CALL_TIMEOUT = 60.0
FINAL_TIMEOUT = 2.5


def host_port(address: str) -> tuple[str, int]:
    """`host:port` or `ray://host:port` -> (host, port)."""
    parsed = urlparse(address if "://" in address else f"tcp://{address}")
    if not parsed.hostname or not parsed.port:
        raise ValueError(f"{address!r} is not host:port or ray://host:port")
    return parsed.hostname, parsed.port


def reachable(address: str, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections at the address (cheap, bounded)."""
    try:
        host, port = host_port(address)
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


class Inbox:
    """Records read from stdin by a thread; `closed` once stdin ends."""

    def __init__(self, stream: Iterable[bytes]) -> None:
        self.records: list[list[Optional[float]]] = []
        self.lock = threading.Lock()
        self.closed = threading.Event()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: Iterable[bytes]) -> None:
        import json

        try:
            for line in stream:
                try:
                    batch = json.loads(line)
                except ValueError:
                    continue
                with self.lock:
                    self.records.extend(batch)
        finally:
            self.closed.set()

    def take(self) -> list[list[Optional[float]]]:
        with self.lock:
            records, self.records = self.records, []
        return records


def _die_with_parent(parent: Optional[str]) -> None:
    """SIGKILL when the training process exits; leave now if it already has."""
    from .._sys.lifetime import die_with_parent

    if not die_with_parent(int(parent) if parent and parent.isdigit() else None):
        os._exit(0)


def _quiet_stderr() -> TextIO:
    """Keep a handle on the real stderr for our one message; send fd 2 (Ray's C++ logs) elsewhere."""
    message = os.fdopen(os.dup(2), "w", buffering=1)
    run_dir = os.environ.get(ENV_RUN_DIR)
    target = os.devnull
    if run_dir and os.path.isdir(run_dir):
        os.makedirs(os.path.join(run_dir, "metrics"), exist_ok=True)
        worker = os.environ.get(ENV_WORKER_INDEX, "0")
        rank = os.environ.get("LOCAL_RANK", "0")
        target = os.path.join(run_dir, "metrics", f"shipper-{worker}-{rank}.log")
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 2)
    os.close(fd)
    return message


def _connect(address: str) -> tuple[threading.Thread, list[Optional[str]]]:
    """Start ray.init in a thread; returns (thread, outcome list: [] while connecting, [None] when
    connected, [why] when it failed)."""
    outcome: list[Optional[str]] = []

    def connect() -> None:
        try:
            import ray

            from .collector import RAY_NAMESPACE

            ray.init(address=address, namespace=RAY_NAMESPACE, logging_level=logging.ERROR,
                     log_to_driver=False, configure_logging=False)
            outcome.append(None)
        except Exception as error:  # noqa: BLE001 - any failure means "no metrics"
            outcome.append(f"{type(error).__name__}: {error}".strip()[:300])

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    return thread, outcome


SPOOL_PREFIX = "spool-"


def spool(records: list[list[Optional[float]]], worker: int, rank: int) -> None:
    """Training ended before Ray was up: leave the records in the run directory (local runs), where
    the local metrics helper adds them to the final figures. Elsewhere they are dropped."""
    import json

    run_dir = os.environ.get(ENV_RUN_DIR)
    if not records or not run_dir or not os.path.isdir(run_dir):
        return
    directory = os.path.join(run_dir, "metrics")
    os.makedirs(directory, exist_ok=True)
    line = json.dumps({"worker": worker, "rank": rank, "records": records}, separators=(",", ":"))
    with open(os.path.join(directory, f"{SPOOL_PREFIX}{worker}-{rank}.jsonl"), "a", encoding="utf-8") as out:
        out.write(line + "\n")


def main() -> int:
    env = os.environ
    address = env.get(ENV_METRICS_ADDRESS, "")
    namespace, job = env.get(ENV_NAMESPACE, "default"), env.get(ENV_JOB, "")
    worker, rank = int(env.get(ENV_WORKER_INDEX) or 0), int(env.get("LOCAL_RANK") or 0)
    who = f"worker {worker}" + (f" rank {rank}" if env.get("LOCAL_RANK") else "")
    _die_with_parent(env.get(ENV_METRICS_PARENT))
    try:
        os.nice(int(env.get(ENV_METRICS_NICE, "10")))  # training gets the CPU first
    except (OSError, ValueError):
        pass
    message = _quiet_stderr()
    inbox = Inbox(sys.stdin.buffer)

    def give_up(why: str) -> int:
        print(f"tandem.metrics ({who}): Ray at {address} {why}; training goes on without metrics",
              file=message, flush=True)
        os._exit(0)  # Ray's atexit handlers may wait on a dead cluster: leave at once

    def spool_and_exit() -> None:
        spool(inbox.take(), worker, rank)
        os._exit(0)

    deadline = time.monotonic() + CONNECT_TIMEOUT
    while not reachable(address):
        if inbox.closed.is_set():
            spool_and_exit()  # training ended before Ray came up
        if time.monotonic() > deadline:
            return give_up(f"is unreachable (waited {CONNECT_TIMEOUT:.0f} s)")
        time.sleep(0.25)
    thread, outcome = _connect(address)
    deadline = max(deadline, time.monotonic() + 30.0)
    while thread.is_alive() and not outcome:
        thread.join(0.2)
        if inbox.closed.is_set() and not outcome:
            spool_and_exit()
        if time.monotonic() > deadline:
            return give_up("did not accept the connection in time")
    if not outcome or outcome[0] is not None:
        return give_up(f"refused the connection ({outcome[0] if outcome else 'no answer'})")
    try:
        import ray

        from .collector import get_or_create

        actor = get_or_create(namespace, job)
    except Exception as error:  # noqa: BLE001
        return give_up(f"has no metrics collector ({type(error).__name__}: {error})")

    pending: list[list[Optional[float]]] = []
    answered = False  # the first call waits for the actor's process to start: be patient
    while True:
        closed = inbox.closed.wait(SHIP_EVERY)
        pending.extend(inbox.take())
        if pending:
            timeout = FINAL_TIMEOUT if closed else (CALL_TIMEOUT if answered else FIRST_CALL_TIMEOUT)
            try:
                ray.get(actor.report.remote(worker, rank, pending), timeout=timeout)
                pending, answered = [], True
            except Exception as error:  # noqa: BLE001 - lost Ray: say so once, stop
                if closed:
                    os._exit(0)  # the last records did not make it in time; nothing to say
                return give_up(f"was lost ({type(error).__name__})")
        if closed:
            os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
