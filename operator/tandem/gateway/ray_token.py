"""``python -m tandem.gateway.ray_token PATH``: the Ray head pod's token, made by its init container.

The chart's Ray head runs with Ray's token authentication (RAY_AUTH_MODE=token): without it,
any pod that reaches the head's ports (a cluster whose network plugin ignores NetworkPolicy)
is a Ray driver there, free to replace a job's collector or run code beside the gateway. The
token's only holders are the head and the gateway, two containers of one pod, so it is made
here, in that pod, into a memory-backed emptyDir both mount (RAY_AUTH_TOKEN_PATH): no Secret
holds it, no API reader can fetch it, a `helm template` render cannot rotate it under a
running head, and every new head pod has a new one.

A token already there is kept: init containers run again when the pod's sandbox is recreated,
and the head and gateway restarting beside it must keep agreeing with each other.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path
from typing import Optional

#: 32 random bytes as 64 hex digits, the form of Ray's own generated tokens
#: (ray._private.authentication.authentication_token_generator); no newline, Ray reads the
#: whole file as the token.
TOKEN_BYTES = 32


def ensure_token(path: Path) -> bool:
    """Write a fresh token at `path` (owner read-only) unless one is there; True if written.

    Written beside it and renamed, so a reader never sees a partial token and a crash leaves
    either no token or a whole one."""
    if path.is_file() and path.stat().st_size > 0:
        return False
    staging = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
    try:
        os.write(fd, secrets.token_hex(TOKEN_BYTES).encode())
    finally:
        os.close(fd)
    os.replace(staging, path)
    return True


def main(argv: Optional[list[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m tandem.gateway.ray_token PATH", file=sys.stderr)
        return 2
    written = ensure_token(Path(args[0]))
    print(f"ray token {'written' if written else 'kept'}: {args[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
