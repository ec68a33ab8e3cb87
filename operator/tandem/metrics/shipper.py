"""``python -m tandem.metrics.shipper``: the one process per rank that sends step records on.

Started by the rank's `Reporter`, it reads JSON lines of step records on stdin and, every
`SHIP_EVERY` seconds, POSTs what it has to the figures gateway at TANDEM_METRICS_ADDRESS
(gateway/server.py) with the job's write token (TANDEM_METRICS_TOKEN). It is a plain HTTP
client (the standard library's urllib): no Ray in training images' processes, and no way for
job code to reach Ray at all. Until the gateway takes records (a local run starts it while the
workers start; a cluster's may be restarting) they are buffered here. On stdin's end (the
training process exits) it ships the rest within a bounded time and exits.

An outage of the gateway or of its Ray (a restart during an upgrade, a Ray call timing out under
load, a head restarted) never ends shipping: failed POSTs are retried for the whole run, after a
capped, jittered backoff, with the records held meanwhile; the worker's log says once that the
figures are delayed and once that they resumed. Stopping for good after one 503 silenced a
healthy job's figures, and the hang clock then took the frozen figures for a hung job. A 429 (the
job is over its rate of POSTs at the gateway, gateway/limits.py) is met the same way, waiting at
least its Retry-After. Only a refusal that no retry can change (the token does not open the job)
ends it: it says so once on stderr and exits; the reporter then drops records, and training goes on.

A POST the gateway applied but whose answer timed out is sent again: each record carries its
number in this process's stream (`Outbox`), and the collector skips the numbers it already holds,
so no step is counted twice.

Past `MAX_PENDING` held records the oldest are dropped, not coalesced: on the wire and in the
collector a record is one step (the collector counts records as steps), so a merged record
would undercount as surely as a dropped one, and would give the rate window one false step.
The bound holds about two hours of steps at 30 steps/s (some 30 MB); the newest records, the
ones the rate window and the hang clock read, are always kept; the log says how many were lost.
"""

from __future__ import annotations

import os
import secrets
import socket
import sys
import threading
import time
from typing import Any, Iterable, Optional, TextIO
from urllib.parse import urlparse

from .._sys.gateway_post import BACKOFF_CAP, backoff, post as post_to_gateway
from ..contract import (
    ENV_JOB,
    ENV_METRICS_ADDRESS,
    ENV_METRICS_CONNECT_TIMEOUT,
    ENV_METRICS_NICE,
    ENV_METRICS_PARENT,
    ENV_METRICS_TOKEN,
    ENV_NAMESPACE,
    ENV_RUN_DIR,
    ENV_WORKER_INDEX,
)
from ..figures.record import Step, decode, encode

SHIP_EVERY = 1.0
#: How long to wait for the gateway to take records before giving up.
CONNECT_TIMEOUT = float(os.environ.get(ENV_METRICS_CONNECT_TIMEOUT, "120"))
CALL_TIMEOUT = 10.0
FINAL_TIMEOUT = 2.5
#: Records per POST (the gateway takes at most wire.MAX_BATCH).
CHUNK = 2000
#: Records held while the gateway cannot take them; beyond this the oldest are dropped.
MAX_PENDING = 200_000


def bounded(records: list[Step], limit: int) -> tuple[list[Step], int]:
    """The newest `limit` records, and how many older ones were dropped."""
    if len(records) <= limit:
        return records, 0
    return records[-limit:], len(records) - limit


def host_port(address: str) -> tuple[str, int]:
    """`host:port`, `http://host:port` or `ray://host:port` -> (host, port)."""
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
    """Steps read from stdin by a thread, and the rank's latest info (a line that is a JSON
    object, not a list); `closed` once stdin ends. A record that does not decode (a NaN, a
    negative count: figures/record.py) is dropped here, before it could cost its whole batch at
    the gateway."""

    def __init__(self, stream: Iterable[bytes]) -> None:
        self.records: list[Step] = []
        self.info: Optional[dict[str, Any]] = None
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
                if isinstance(batch, dict):
                    with self.lock:
                        self.info = batch
                elif isinstance(batch, list):
                    steps = _decoded(batch)
                    with self.lock:
                        self.records.extend(steps)
        finally:
            self.closed.set()

    def take(self) -> list[Step]:
        with self.lock:
            records, self.records = self.records, []
        return records


def _decoded(records: list[Any]) -> list[Step]:
    """The records that decode as steps; the others dropped."""
    steps = []
    for raw in records:
        try:
            steps.append(decode(raw))
        except ValueError:
            continue
    return steps


def _die_with_parent(parent: Optional[str]) -> None:
    """SIGKILL when the training process exits; leave now if it already has."""
    from .._sys.lifetime import die_with_parent

    if not die_with_parent(int(parent) if parent and parent.isdigit() else None):
        os._exit(0)


def _quiet_stderr() -> TextIO:
    """Keep a handle on the real stderr for our one message; send fd 2 (anything else) elsewhere."""
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


SPOOL_PREFIX = "spool-"


def spool(records: list[Step], worker: int, rank: int, info: Optional[dict[str, Any]] = None) -> None:
    """Training ended before the gateway took records: leave the records and the rank's latest info (its
    progress and GPU use) in the run directory (local runs), where the local metrics helper adds them to
    the final figures. Elsewhere they are dropped."""
    import json

    run_dir = os.environ.get(ENV_RUN_DIR)
    if not records or not run_dir or not os.path.isdir(run_dir):
        return
    directory = os.path.join(run_dir, "metrics")
    os.makedirs(directory, exist_ok=True)
    entry: dict[str, Any] = {"worker": worker, "rank": rank, "records": [encode(r) for r in records]}
    if info is not None:
        entry["info"] = info
    line = json.dumps(entry, separators=(",", ":"))
    with open(os.path.join(directory, f"{SPOOL_PREFIX}{worker}-{rank}.jsonl"), "a", encoding="utf-8") as out:
        out.write(line + "\n")


class Refused(Exception):
    """The gateway will never take these records (the token does not open the job, or it is
    the wrong kind of server): stop at once."""


class NotYet(Exception):
    """The gateway is there but cannot take records yet (its Ray is starting), or not this fast
    (429, the job's rate at the gateway): try again, after `retry_after` seconds at least."""

    def __init__(self, why: str, retry_after: float = 0.0):
        super().__init__(why)
        self.retry_after = retry_after


def retry_after(header: Optional[str]) -> float:
    """An HTTP Retry-After in seconds (0 when absent or not a number of seconds), at most BACKOFF_CAP:
    the gateway's word is followed, but never past the wait the hang clock allows for."""
    text = (header or "").strip()
    return min(BACKOFF_CAP, float(text)) if text.isdigit() else 0.0


def post(url: str, token: str, body: bytes, timeout: float) -> None:
    """POST one batch; raises Refused, NotYet, or OSError (unreachable)."""
    import urllib.error

    try:
        post_to_gateway(url, token, body, timeout)
    except urllib.error.HTTPError as error:
        if error.code in (429, 502, 503, 504):  # 429: the job's rate at the gateway; the records wait
            raise NotYet(f"{error.code} {error.reason}", retry_after(error.headers.get("Retry-After"))) from None
        if error.code in (400, 413):
            return  # a malformed batch (cannot happen with our encoder): drop it, keep going
        raise Refused(f"{error.code} {error.reason}") from None


class Outbox:
    """The records not yet delivered, numbered in this process's stream (figures/wire.py): `first`
    is the number of `records[0]`. A POST whose answer is lost (a timeout after the gateway had
    applied it) leaves its records here; sent again with their numbers, the collector skips them."""

    def __init__(self) -> None:
        self.stream = secrets.token_hex(8)
        self.first = 0
        self.records: list[Step] = []

    def add(self, steps: list[Step]) -> None:
        self.records.extend(steps)

    def bound(self, limit: int) -> int:
        """Keep the newest `limit` records; how many older ones were dropped (their numbers skipped)."""
        self.records, dropped = bounded(self.records, limit)
        self.first += dropped
        return dropped

    def delivered(self, count: int) -> None:
        del self.records[:count]
        self.first += count


def ship(url: str, token: str, worker: int, rank: int, outbox: Outbox, timeout: float,
         info: Optional[dict[str, Any]] = None) -> None:
    """Every record, in chunks the gateway accepts; the info with the last chunk. Each chunk
    delivered is removed from the outbox at once, so a failure midway never sends one again
    (and one whose answer was lost is skipped by its numbers)."""
    from ..figures import wire

    while True:
        chunk = outbox.records[:CHUNK]
        last = len(outbox.records) <= CHUNK
        post(url, token, wire.encode(worker, rank, chunk, info if last else None, (outbox.stream, outbox.first)),
             timeout)
        outbox.delivered(len(chunk))
        if last:
            return


def main() -> int:
    from ..figures.wire import records_path

    env = os.environ
    address = env.get(ENV_METRICS_ADDRESS, "")
    token = env.get(ENV_METRICS_TOKEN, "")
    namespace, job = env.get(ENV_NAMESPACE, "default"), env.get(ENV_JOB, "")
    worker, rank = int(env.get(ENV_WORKER_INDEX) or 0), int(env.get("LOCAL_RANK") or 0)
    who = f"worker {worker}" + (f" rank {rank}" if env.get("LOCAL_RANK") else "")
    url = address.rstrip("/") + records_path(namespace, job)
    _die_with_parent(env.get(ENV_METRICS_PARENT))
    try:
        os.nice(int(env.get(ENV_METRICS_NICE, "10")))  # training gets the CPU first
    except (OSError, ValueError):
        pass
    message = _quiet_stderr()
    inbox = Inbox(sys.stdin.buffer)

    def give_up(why: str) -> int:
        print(f"tandem.metrics ({who}): the figures gateway at {address} {why}; training goes on without metrics",
              file=message, flush=True)
        os._exit(0)

    if not token:
        return give_up("cannot be used: no job token (TANDEM_METRICS_TOKEN)")
    def say(what: str) -> None:
        print(f"tandem.metrics ({who}): {what}"[:400], file=message, flush=True)

    pending = Outbox()
    answered = False  # the gateway has taken records at least once
    sent_info: Optional[dict[str, Any]] = None
    delayed = False  # said that the figures are delayed, and not yet that they resumed
    failures, lost, next_try = 0, 0, 0.0
    started = time.monotonic()
    while True:
        closed = inbox.closed.wait(SHIP_EVERY)
        pending.add(inbox.take())
        lost += pending.bound(MAX_PENDING)
        info = inbox.info
        due = closed or time.monotonic() >= next_try
        if due and (pending.records or (info is not None and info != sent_info)):
            try:
                ship(url, token, worker, rank, pending, FINAL_TIMEOUT if closed else CALL_TIMEOUT, info)
                answered, sent_info, failures = True, info, 0
                if delayed:
                    say("figures resumed: the figures gateway takes records again"
                        + (f" ({lost} of the oldest steps were dropped meanwhile)" if lost else ""))
                    delayed, lost = False, 0
            except Refused as refused:
                return give_up(f"refused the records ({refused})")
            except (NotYet, OSError) as error:
                if closed:
                    if not answered:
                        spool(pending.records, worker, rank, info)  # training ended before the gateway took records
                    os._exit(0)  # the last records did not make it in time; nothing to say
                wait = max(backoff(failures), error.retry_after if isinstance(error, NotYet) else 0.0)
                next_try = time.monotonic() + wait
                failures += 1
                # Before the first answer a gateway may be starting (a local run's Ray): a delay only
                # once that took longer than CONNECT_TIMEOUT; after it, the first failure is one.
                if not delayed and (answered or time.monotonic() - started > CONNECT_TIMEOUT):
                    why = "was lost" if answered else f"is unreachable (waited {CONNECT_TIMEOUT:.0f} s)"
                    say(f"figures delayed: the figures gateway at {address} {why} ({type(error).__name__}: {error}); "
                        f"training goes on, and up to {MAX_PENDING} steps are kept and sent when it answers again")
                    delayed = True
        if closed:
            os._exit(0)

if __name__ == "__main__":
    sys.exit(main())
