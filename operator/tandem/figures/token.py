"""The figures gateway's credentials, derived from one key: no per-job state anywhere.

A job's *write token* is ``<uid>.<hex HMAC-SHA256(key, "write:<namespace>/<name>/<uid>")>``:
the gateway recomputes the MAC from the path's namespace and name and the token's uid, so a
token opens exactly one job (one incarnation of it: a job deleted and created again under the
same name has a new uid, a new token and a new collector). The *reader token* (the operator's)
is ``read.<expiry>.<hex HMAC(key, "read:<expiry>")>``, minted afresh for each read and good for
READER_SECONDS: the gateway serves plain HTTP, so a token read off the wire opens the figures
for minutes, not for as long as the key lives. The "write:" and "read:" prefixes keep the two
domains apart, so no job token can ever be a reader token. Whoever holds the key (the operator,
the gateway) can mint both; tenants only ever see their own job's write token. Standard library
only; pure but for reading the clock where no `now` is given.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from pathlib import Path
from typing import Optional

#: Shortest key accepted: 256 bits.
MIN_KEY_BYTES = 32
#: A Kubernetes uid (a UUID) or a local run's id: what may stand before the dot of a token.
_UID = re.compile(r"^[A-Za-z0-9-]{1,64}$")


def _mac(key: bytes, message: str) -> str:
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def job_token(key: bytes, namespace: str, name: str, uid: str) -> str:
    """The write token of one job: posts its figures, reads nothing."""
    if not _UID.match(uid):
        raise ValueError(f"{uid!r} is not a uid")
    return f"{uid}.{_mac(key, f'write:{namespace}/{name}/{uid}')}"


#: Hex digits of the token Secret's tag: 128 bits, too many to guess or to create in advance.
SECRET_TAG_HEX = 32


def secret_tag(key: bytes, namespace: str, name: str, uid: str) -> str:
    """What makes the name of a job's token Secret (contract.metrics_token_secret) unpredictable
    without the key. Its own "secret:" domain: the name is public once the pods exist, and must
    not be (or lead to) any token."""
    return _mac(key, f"secret:{namespace}/{name}/{uid}")[:SECRET_TAG_HEX]


#: How long a reader token is good for after it is minted.
READER_SECONDS = 300
#: How far the gateway's clock may be from the operator's.
CLOCK_SKEW_SECONDS = 60


def reader_token(key: bytes, now: Optional[float] = None) -> str:
    """The operator's token: reads (and deletes) any job's figures, writes none; good for
    READER_SECONDS from `now` (this moment)."""
    expiry = int(time.time() if now is None else now) + READER_SECONDS
    return f"read.{expiry}.{_mac(key, f'read:{expiry}')}"


def token_uid(key: bytes, namespace: str, name: str, token: str) -> Optional[str]:
    """The uid a write token opens for `namespace`/`name`, or None when it opens nothing there."""
    uid, _, _ = token.partition(".")
    if not token.isascii() or not _UID.match(uid):
        return None
    return uid if hmac.compare_digest(token, job_token(key, namespace, name, uid)) else None


def is_reader(key: bytes, token: str, now: Optional[float] = None) -> bool:
    """True for a reader token of `key` that has not expired and does not outlive READER_SECONDS
    (within CLOCK_SKEW_SECONDS either way): one minted for a far future is refused too."""
    prefix, _, rest = token.partition(".")
    expiry, _, _ = rest.partition(".")
    if prefix != "read" or not token.isascii() or not expiry.isdigit() or len(expiry) > 12:
        return False
    moment = time.time() if now is None else now
    if not moment - CLOCK_SKEW_SECONDS <= int(expiry) <= moment + READER_SECONDS + CLOCK_SKEW_SECONDS:
        return False
    return hmac.compare_digest(token, f"read.{expiry}.{_mac(key, f'read:{expiry}')}")


def load_key(path: str) -> bytes:
    """The key from a file (a mounted Secret): surrounding whitespace stripped, at least 32 bytes."""
    key = Path(path).read_bytes().strip()
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"the metrics key in {path} is shorter than {MIN_KEY_BYTES} bytes")
    return key
