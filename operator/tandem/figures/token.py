"""The figures gateway's credentials, derived from one key: no per-job state anywhere.

A job's *write token* is ``<uid>.<hex HMAC-SHA256(key, "write:<namespace>/<name>/<uid>")>``:
the gateway recomputes the MAC from the path's namespace and name and the token's uid, so a
token opens exactly one job (one incarnation of it: a job deleted and created again under the
same name has a new uid, a new token and a new collector). The *reader token* (the operator's)
is HMAC(key, "read"); the "write:" prefix keeps the two domains apart, so no job token can ever
be a reader token. Whoever holds the key (the operator, the gateway) can mint both; tenants
only ever see their own job's write token. Standard library only, pure.
"""

from __future__ import annotations

import hashlib
import hmac
import re
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


def reader_token(key: bytes) -> str:
    """The operator's token: reads (and deletes) any job's figures, writes none."""
    return _mac(key, "read")


def token_uid(key: bytes, namespace: str, name: str, token: str) -> Optional[str]:
    """The uid a write token opens for `namespace`/`name`, or None when it opens nothing there."""
    uid, _, _ = token.partition(".")
    if not token.isascii() or not _UID.match(uid):
        return None
    return uid if hmac.compare_digest(token, job_token(key, namespace, name, uid)) else None


def is_reader(key: bytes, token: str) -> bool:
    return token.isascii() and hmac.compare_digest(token, reader_token(key))


def load_key(path: str) -> bytes:
    """The key from a file (a mounted Secret): surrounding whitespace stripped, at least 32 bytes."""
    key = Path(path).read_bytes().strip()
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"the metrics key in {path} is shorter than {MIN_KEY_BYTES} bytes")
    return key
