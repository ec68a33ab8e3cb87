"""One authenticated POST to the figures gateway, and the wait between tries: shared by the two
senders inside a worker (metrics/shipper.py, the step records; launch/teller.py, the in-place
restart records), each of which decides what an answer means for what it sends. Standard library
only: the launcher imports it before anything else.
"""

from __future__ import annotations

import random
import urllib.request

#: First wait after a failed POST, doubled per failure up to BACKOFF_CAP. The cap stays far
#: inside the shortest progress deadline: after an outage the hang clock starts again from the
#: first read, and the records must be flowing again well before it could run out.
BACKOFF_FIRST = 0.5
BACKOFF_CAP = 8.0


def backoff(failures: int) -> float:
    """Seconds to wait after `failures` + 1 failed posts in a row: doubling, capped, with jitter in
    its upper half (so a gateway that comes back is not met by every rank of every job at once)."""
    ceiling = min(BACKOFF_CAP, BACKOFF_FIRST * 2.0 ** min(failures, 16))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def post(url: str, token: str, body: bytes, timeout: float) -> None:
    """POST `body` (JSON) with the job's bearer token. Raises urllib.error.HTTPError for an answer
    other than 2xx (the caller sorts them) and OSError when the gateway cannot be reached."""
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        answer.read(4096)
