"""The operator's /healthz, served from start-up on, by followers as well as by the leader.

A follower waiting for the Lease is healthy (Kubernetes must not restart it, and `helm
--wait` must see it Ready). The leader is healthy while its event loop beats: a task in the
loop calls `beat()` every few seconds, so a wedged loop turns /healthz into 503.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STALE_SECONDS = 60.0


class Health:
    def __init__(self) -> None:
        self.role = "starting"
        self._last_beat = time.monotonic()

    def beat(self) -> None:
        self._last_beat = time.monotonic()

    def healthy(self) -> tuple[bool, str]:
        if self.role != "leading":
            return True, self.role
        age = time.monotonic() - self._last_beat
        return age < STALE_SECONDS, f"leading, event loop seen {age:.0f} s ago"

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
