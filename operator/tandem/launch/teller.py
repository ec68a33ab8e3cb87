"""The launcher's in-place restart records (and an elastic job's rendezvous rounds' worlds),
posted to the figures gateway: how the operator learns of them on a cluster, where the launcher's
line (recovery.py) is only in the pod's log.

Each record goes, as the JSON object the line carries, to contract.RECOVERIES_PATH with the job's
write token: the credentials and the gateway the worker's step records already use, so no new
right is granted to anyone (reading pod logs would need the operator to read every tenant's logs).
A daemon thread posts, so the agent's restart never waits on the network. A failed post is
retried after a capped, jittered backoff for the rest of the run (a gateway restarting must not
lose a restart from the count); a refusal no retry can change (the token does not open the job, a
malformed body) drops the record. At most MAX_PENDING records wait: a job that keeps failing
while the gateway is away must not grow the launcher. `flush` gives what is still pending a
bounded last try when the launcher ends. Standard library only, as everything the launcher runs.
"""

from __future__ import annotations

import collections
import json
import threading
import time
import urllib.error
from typing import Any, Callable, Mapping, Optional

from .._sys import gateway_post
from ..contract import ENV_JOB, ENV_METRICS_ADDRESS, ENV_METRICS_TOKEN, ENV_NAMESPACE, RECOVERIES_PATH

#: Records held while the gateway cannot take them (the oldest dropped beyond).
MAX_PENDING = 64
#: Seconds one POST may take.
POST_TIMEOUT = 10.0
#: Seconds the launcher's end waits for pending records.
FLUSH_SECONDS = 3.0


class Refused(Exception):
    """The gateway will never take this record: drop it."""


def post(url: str, token: str, record: Mapping[str, Any], timeout: float = POST_TIMEOUT) -> None:
    """POST one record; raises Refused (a 4xx other than a timeout or a rate limit) or OSError."""
    body = json.dumps(record, separators=(",", ":"), allow_nan=False).encode()
    try:
        gateway_post.post(url, token, body, timeout)
    except urllib.error.HTTPError as error:
        if 400 <= error.code < 500 and error.code not in (408, 429):
            raise Refused(f"{error.code} {error.reason}") from None
        raise OSError(f"{error.code} {error.reason}") from None


class Teller:
    """Posts records in the order told, one thread, never blocking the caller."""

    def __init__(self, url: str, token: str, send: Callable[[str, str, Mapping[str, Any]], None] = post,
                 wait: Callable[[float], object] = time.sleep):
        self.url, self.token, self.send, self.wait = url, token, send, wait
        self.pending: collections.deque[dict[str, Any]] = collections.deque(maxlen=MAX_PENDING)
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.idle = threading.Event()
        self.idle.set()
        self.thread: Optional[threading.Thread] = None

    @classmethod
    def from_env(cls, env: Mapping[str, str], path: str = RECOVERIES_PATH) -> Optional[Teller]:
        """The job's teller to `path` (RECOVERIES_PATH or WORLD_PATH: one teller, one thread and one
        order per kind of record), or None without a gateway or a write token (figures disabled)."""
        address, token = env.get(ENV_METRICS_ADDRESS, "").strip(), env.get(ENV_METRICS_TOKEN, "").strip()
        job, namespace = env.get(ENV_JOB, "").strip(), env.get(ENV_NAMESPACE, "default").strip() or "default"
        if not (address and token and job):
            return None
        return cls(address.rstrip("/") + path.format(namespace=namespace, name=job), token)

    def tell(self, record: Mapping[str, Any]) -> None:
        with self.lock:
            self.pending.append(dict(record))
            self.idle.clear()
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="tandem-teller", daemon=True)
                self.thread.start()
        self.wake.set()

    def flush(self, timeout: float = FLUSH_SECONDS) -> bool:
        """Wait up to `timeout` s for every record told to be posted (or dropped); True if none is left."""
        return self.idle.wait(timeout)

    def _next(self) -> Optional[dict[str, Any]]:
        with self.lock:
            if self.pending:
                return self.pending[0]
            self.idle.set()
            self.wake.clear()
            return None

    def _done(self, record: dict[str, Any]) -> None:
        with self.lock:
            if self.pending and self.pending[0] is record:
                self.pending.popleft()

    def _run(self) -> None:
        failures = 0
        while True:
            record = self._next()
            if record is None:
                self.wake.wait()
                continue
            try:
                self.send(self.url, self.token, record)
            except Refused:
                pass  # dropped: no retry can change a refusal
            except OSError:
                self.wait(gateway_post.backoff(failures))
                failures += 1
                continue
            failures = 0
            self._done(record)
