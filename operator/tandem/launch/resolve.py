"""Wait until the coordinator's name resolves, before the framework looks it up.

On Kubernetes, worker 0's name (``<job>-0.<job>.<ns>.svc``) exists only once worker 0's pod
has an address and the headless Service publishes it. Another worker's pod may start well
before that (its node was faster, or worker 0's image was still being pulled). torch's store
client does retry a failed lookup, but it logs "Name or service not known" every second or so
until the name appears, which reads as the failure it is not; TensorFlow's gRPC channels log
DNS errors the same way. Waiting here, quietly and up to a deadline, keeps both logs clean,
and a name that never resolves fails with one line that says which.
"""

from __future__ import annotations

import socket
import time
from typing import Callable

#: As long as torchrun's rendezvous waits for its peers by default (600 s, its join timeout).
RESOLVE_TIMEOUT_S = 600.0
RESOLVE_INTERVAL_S = 0.5


def resolves(host: str) -> bool:
    try:
        return bool(socket.getaddrinfo(host, None))
    except (socket.gaierror, UnicodeError):
        return False


def wait_for_name(
    host: str,
    timeout: float = RESOLVE_TIMEOUT_S,
    interval: float = RESOLVE_INTERVAL_S,
    lookup: Callable[[str], bool] = resolves,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """True as soon as ``host`` resolves; False once ``timeout`` seconds have passed without."""
    deadline = clock() + timeout
    while not lookup(host):
        if clock() >= deadline:
            return False
        sleep(interval)
    return True
