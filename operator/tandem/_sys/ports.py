"""Free TCP ports on loopback: for local workers, the private Ray, TensorBoard, the operator's
endpoints and the test control plane.

A port is only known free at the moment the kernel hands it out; whoever binds it later may
lose a race, so callers that can retry (the test control plane) do.
"""

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


def free_port() -> int:
    """One port the kernel says is free now (nothing listens on it)."""
    return free_ports(1)[0]
