"""Free TCP ports on loopback, for local workers, the private Ray and TensorBoard."""

from __future__ import annotations

import socket


def free_ports(count: int) -> list[int]:
    """Ports the kernel says are free now; held open together so that no two are the same."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()
