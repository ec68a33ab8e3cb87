"""``python -m tandem.gateway``: the figures gateway, the one door to the collectors.

It runs beside the Ray head (in the chart: a second container of the head's pod; in a local
run: inside the `tandem run` metrics helper) as the only Ray driver of the metrics path, and
serves a narrow HTTP interface (figures/wire.py) on the one port the workers may reach:

- a job's workers POST their step records with the job's write token (figures/token.py); the
  token opens that job only, and the body is schema-checked before anything reaches Ray;
- the operator GETs a job's snapshot (and DELETEs its collector) with the reader token.

Ray stays the collector: each record goes to the job's `Collector` actor, as before. The Ray
ports themselves are reachable from nowhere but the head's own pod, so tenant code is never a
Ray driver, and the operator is never a Ray client (it only parses bounded JSON).

The server is the standard library's threading HTTP server: a handful of requests a second,
no dependency beyond what every image has. Each connection's socket has a timeout, so a slow
client holds one thread for at most REQUEST_TIMEOUT seconds.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional

from ..contract import ENV_METRICS_KEY_FILE, METRICS_GATEWAY_PORT
from ..figures import token, wire

log = logging.getLogger("tandem.gateway")

REQUEST_TIMEOUT = 10.0
RAY_CALL_TIMEOUT = 10.0
CONNECT_TIMEOUT = 60.0
#: How often the standalone gateway checks that its Ray connection still stands.
WATCH_SECONDS = 15.0

JobKey = tuple[str, str, str]  # namespace, name, uid


class Collectors:
    """This process's link to Ray: one driver connection, the collectors' handles by job.

    Created collectors are remembered; creation is serialised by a lock, so two workers' first
    records never race to create one job's actor."""

    def __init__(self, address: str):
        self.address = address
        self.ready = threading.Event()
        self.failure = ""
        self._handles: dict[JobKey, Any] = {}
        self._lock = threading.Lock()

    def connect(self, timeout: float = CONNECT_TIMEOUT) -> bool:
        """Become a Ray driver of `address`, retrying until `timeout`; True once connected."""
        import ray

        from .collector import RAY_NAMESPACE

        deadline = time.monotonic() + timeout
        while True:
            try:
                ray.init(address=self.address, namespace=RAY_NAMESPACE, logging_level=logging.ERROR,
                         log_to_driver=False, configure_logging=False)
                self.ready.set()
                return True
            except Exception as error:  # noqa: BLE001 - Ray not up yet, or gone: try again
                self.failure = f"{type(error).__name__}: {error}"[:300]
                if ray.is_initialized():
                    ray.shutdown()
                if time.monotonic() > deadline:
                    return False
                time.sleep(1.0)

    def _handle(self, job: JobKey, create: bool) -> Any:
        from .collector import get_or_create, lookup

        with self._lock:
            handle = self._handles.get(job)
            if handle is None:
                handle = get_or_create(*job) if create else lookup(*job)
                self._handles[job] = handle
            return handle

    def _call(self, job: JobKey, create: bool, method: str, *args: Any) -> Any:
        """Call the job's actor; a handle that went stale (the actor was deleted) is looked up again once."""
        import ray

        for attempt in (0, 1):
            handle = self._handle(job, create)
            try:
                return ray.get(getattr(handle, method).remote(*args), timeout=RAY_CALL_TIMEOUT)
            except ray.exceptions.RayActorError:
                with self._lock:
                    self._handles.pop(job, None)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def ensure(self, job: JobKey) -> None:
        """Create the job's collector now (a local run does, so its Ray is warm for the first records)."""
        self._handle(job, create=True)

    def report(self, job: JobKey, batch: wire.Batch) -> None:
        self._call(job, True, "report", batch.worker, batch.rank, batch.records, batch.info)

    def snapshot(self, job: JobKey) -> Optional[dict[str, Any]]:
        """The job's snapshot, or None when it has no collector (no records yet)."""
        try:
            result: dict[str, Any] = self._call(job, False, "snapshot")
            return result
        except ValueError:
            return None

    def delete(self, job: JobKey) -> bool:
        import ray

        from .collector import lookup

        with self._lock:
            self._handles.pop(job, None)
        try:
            ray.kill(lookup(*job))
            return True
        except ValueError:
            return False


class Handler(BaseHTTPRequestHandler):
    """One request; `server.key` and `server.collectors` are the gateway's."""

    server: GatewayServer
    timeout = REQUEST_TIMEOUT
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request would drown the head's log; refusals are logged below

    def _answer(self, status: int, document: Any = None) -> None:
        body = b"" if document is None else json.dumps(document, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _refuse(self, status: int, why: str) -> None:
        log.info("refused %s %s: %d %s", self.command, self.path[:200], status, why)
        self.close_connection = True  # a body may be left unread: never parse it as a next request
        self._answer(status, {"error": why})

    def _token(self) -> Optional[str]:
        return wire.bearer(self.headers.get("Authorization"))

    def do_POST(self) -> None:  # noqa: N802 - the base class's name
        match = wire.RECORDS_PATH.match(self.path)
        if match is None:
            return self._refuse(404, "no such path")
        given = self._token()
        if given is None:
            return self._refuse(401, "a job's bearer token is required")
        namespace, name = match["namespace"], match["name"]
        uid = token.token_uid(self.server.key, namespace, name, given)
        if uid is None:
            return self._refuse(403, f"the token does not open {namespace}/{name}")
        try:
            length = int(self.headers.get("Content-Length") or -1)
        except ValueError:
            length = -1
        if not 0 <= length <= wire.MAX_BODY_BYTES:
            return self._refuse(413, f"a Content-Length of at most {wire.MAX_BODY_BYTES} bytes is required")
        try:
            batch = wire.batch(self.rfile.read(length))
        except wire.Refused as refused:
            return self._refuse(refused.status, str(refused))
        if not self.server.collectors.ready.is_set():
            return self._answer(503, {"error": "Ray is not up yet"})
        try:
            self.server.collectors.report((namespace, name, uid), batch)
        except Exception as error:  # noqa: BLE001 - Ray trouble: the shipper retries or gives up
            log.warning("records of %s/%s not stored: %s", namespace, name, error)
            return self._answer(503, {"error": f"the collector did not take the records ({type(error).__name__})"})
        self._answer(204)

    def _reader_job(self) -> Optional[JobKey]:
        """The job a reader's GET or DELETE names; None (answered already) when refused."""
        match = wire.JOB_PATH.match(self.path)
        if match is None:
            self._refuse(404, "no such path")
            return None
        given = self._token()
        if given is None or not token.is_reader(self.server.key, given):
            self._refuse(401 if given is None else 403, "the reader's token is required")
            return None
        if not self.server.collectors.ready.is_set():
            self._answer(503, {"error": "Ray is not up yet"})
            return None
        return match["namespace"], match["name"], match["uid"]

    def do_GET(self) -> None:  # noqa: N802
        job = self._reader_job()
        if job is None:
            return
        try:
            snapshot = self.server.collectors.snapshot(job)
        except Exception as error:  # noqa: BLE001
            return self._answer(503, {"error": f"the collector did not answer ({type(error).__name__})"})
        if snapshot is None:
            return self._answer(404, {"error": f"no figures for {job[0]}/{job[1]} yet"})
        self._answer(200, snapshot)

    def do_DELETE(self) -> None:  # noqa: N802
        job = self._reader_job()
        if job is None:
            return
        try:
            self._answer(200 if self.server.collectors.delete(job) else 404)
        except Exception as error:  # noqa: BLE001
            self._answer(503, {"error": f"the collector was not deleted ({type(error).__name__})"})


class GatewayServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], key: bytes, collectors: Collectors):
        super().__init__(address, Handler)
        self.key = key
        self.collectors = collectors


def start(key: bytes, collectors: Collectors, host: str, port: int) -> GatewayServer:
    """Serve in a daemon thread (answering 503 until `collectors` is connected); returns the server."""
    server = GatewayServer((host, port), key, collectors)
    threading.Thread(target=server.serve_forever, name="tandem-metrics-gateway", daemon=True).start()
    return server


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tandem.gateway", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="0.0.0.0", help="Address to serve on (default: all).")
    parser.add_argument("--port", type=int, default=METRICS_GATEWAY_PORT)
    parser.add_argument("--ray-address", default="ray://127.0.0.1:10001",
                        help="The Ray head, on this pod's loopback (default: its client port).")
    parser.add_argument("--key-file", default=os.environ.get(ENV_METRICS_KEY_FILE, ""),
                        help="File holding the gateway key (a mounted Secret).")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    key = token.load_key(args.key_file)
    collectors = Collectors(args.ray_address)
    server = start(key, collectors, args.host, args.port)
    log.info("serving on %s:%d; connecting to Ray at %s", args.host, args.port, args.ray_address)
    while not collectors.connect():
        log.warning("no connection to Ray at %s yet (%s); still trying", args.ray_address, collectors.failure)
    log.info("connected to Ray")
    import ray

    # A lost Ray connection (the head restarted) does not come back by itself: exit, and let the
    # kubelet restart this container, which connects afresh.
    while ray.is_initialized():
        time.sleep(WATCH_SECONDS)
    log.error("lost the connection to Ray at %s; exiting to be restarted", args.ray_address)
    server.shutdown()
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
