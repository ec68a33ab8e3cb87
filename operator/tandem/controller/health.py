"""The operator's /healthz, served from start-up on, by followers as well as by the leader.

A follower waiting for the Lease is healthy (Kubernetes must not restart it, and `helm
--wait` must see it Ready). The leader is healthy while its event loop beats and its work queue
moves: a task in the loop calls `beat()` every few seconds with the queue's progress, so a
wedged loop (no beat) or a wedged queue (keys waiting, no reconcile finishing: every worker
stuck in a handler) turns /healthz into 503, and the liveness probe restarts the process. A
busy queue that keeps finishing passes, and an idle one, stay green.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional

from .queue import Progress
from .timing import EVENT_LOOP_STALE_SECONDS, QUEUE_STALL_SECONDS


class Health:
    def __init__(self, queue_stall_seconds: float = QUEUE_STALL_SECONDS) -> None:
        self.role = "starting"
        self.queue_stall_seconds = queue_stall_seconds
        self._last_beat = time.monotonic()
        self._progress: Optional[Progress] = None

    def beat(self, progress: Optional[Progress] = None) -> None:
        """Called from the event loop: it runs, and this is how its work queue stands."""
        self._progress = progress
        self._last_beat = time.monotonic()

    def healthy(self) -> tuple[bool, str]:
        if self.role != "leading":
            return True, self.role
        age = time.monotonic() - self._last_beat
        detail = f"leading, event loop seen {age:.0f} s ago"
        if age >= EVENT_LOOP_STALE_SECONDS:
            return False, detail
        progress = self._progress  # one read: the loop may replace it meanwhile
        wedged = progress.stalled(self.queue_stall_seconds) if progress is not None else ""
        if wedged:
            return False, f"{detail}; {wedged}"
        waiting = f", {progress.waiting} key(s) waiting" if progress is not None else ""
        return True, detail + waiting

    def serve(self, port: int) -> ThreadingHTTPServer:
        health = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path.split("?")[0] not in ("/healthz", "/readyz"):
                    self.send_error(404)
                    return
                ok, detail = health.healthy()
                body = f"{'ok' if ok else 'unhealthy'}: {detail}\n".encode()
                self.send_response(200 if ok else 503)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:  # probes every few seconds are noise
                pass

        server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
        threading.Thread(target=server.serve_forever, name="healthz", daemon=True).start()
        return server
