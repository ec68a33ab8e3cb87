"""``python -m tandem.gateway``: the figures gateway, the one door to the collectors.

It runs beside the Ray head (in the chart: a second container of the head's pod; in a local
run: inside the `tandem run` metrics helper) as the only Ray driver of the metrics path, and
serves a narrow HTTP interface (figures/wire.py) on the one port the workers may reach:

- a job's workers POST their step records with the job's write token (figures/token.py); the
  token opens that job only, and the body is schema-checked before anything reaches Ray; with the
  same token their launchers POST each in-place restart (launch/teller.py);
- the operator GETs a job's snapshot (and DELETEs its collector) with the reader token.

Ray stays the collector: each record goes to the job's `Collector` actor, as before. The Ray
ports themselves are reachable from nowhere but the head's own pod, so tenant code is never a
Ray driver, and the operator is never a Ray client (it only parses bounded JSON).

The server holds against clients that connect and stall (GatewayServer): connections live in
one asyncio loop, bounded in number and each in time (REQUEST_DEADLINE for the whole request),
the token is checked from the head before any body is read, a job's POSTs are held to a rate
(gateway/limits.py), and only a fixed pool of WORKERS threads does blocking work. Standard
library only: no dependency beyond what every image has.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import io
import json
import logging
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Optional

from ..contract import ENV_METRICS_KEY_FILE, METRICS_GATEWAY_PORT
from ..figures import token, wire
from .health import Intake
from .limits import JobBuckets

log = logging.getLogger("tandem.gateway")

#: Seconds a connection has for its whole request (head and body) and answer.
REQUEST_DEADLINE = 10.0
#: Connections open at once; past it, the oldest still sending its request is closed.
MAX_CONNECTIONS = 512
#: Threads that check bodies and wait on Ray: the gateway's threads are these and its loop's.
WORKERS = 8
#: Connections the kernel holds for the gateway before it accepts them.
BACKLOG = 128
#: Largest request line and headers together.
MAX_HEAD_BYTES = 16 << 10
RAY_CALL_TIMEOUT = 10.0
CONNECT_TIMEOUT = 60.0
#: How often the standalone gateway checks that its Ray connection still stands.
WATCH_SECONDS = 15.0

JobKey = tuple[str, str, str]  # namespace, name, uid


def report_arguments(batch: wire.Batch) -> tuple[Any, ...]:
    """The arguments of `Collector.report` for a checked batch."""
    return batch.worker, batch.rank, batch.records, batch.info, batch.stream, batch.first


class Collectors:
    """This process's link to Ray: one driver connection, the collectors' handles by job.

    Created collectors are remembered; creation is serialised by a lock, so two workers' first
    records never race to create one job's actor. How each job's stores went (`intake`,
    gateway/health.py) travels with its snapshot."""

    def __init__(self, address: str):
        self.address = address
        self.ready = threading.Event()
        self.failure = ""
        self.intake = Intake(time.monotonic())
        self._handles: dict[JobKey, Any] = {}
        self._lock = threading.Lock()

    def connect(self, timeout: float = CONNECT_TIMEOUT, give_up: Optional[threading.Event] = None) -> bool:
        """Become a Ray driver of `address`, retrying until `timeout` or until `give_up` is set (a
        local run that ended meanwhile has nothing left to send); True once connected."""
        import ray

        from .collector import RAY_NAMESPACE

        deadline = time.monotonic() + timeout
        pause = give_up or threading.Event()  # waited on between tries: set, it ends them
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
                if time.monotonic() > deadline or pause.wait(1.0):
                    return False

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
        try:
            self._call(job, True, "report", *report_arguments(batch))
        except Exception:
            self.intake.failed(job, time.monotonic())
            raise
        self.intake.ok(job, time.monotonic())

    def recovered(self, job: JobKey, record: dict[str, Any]) -> None:
        self._call(job, True, "recovered", record)

    def world(self, job: JobKey, record: dict[str, Any]) -> None:
        self._call(job, True, "world", record)

    def snapshot(self, job: JobKey) -> Optional[dict[str, Any]]:
        """The job's snapshot with how its stores went ("ingest"), or None when it has no collector
        (no records yet)."""
        try:
            result: dict[str, Any] = self._call(job, False, "snapshot")
        except ValueError:
            return None
        result["ingest"] = self.intake.ages(job, time.monotonic())
        return result

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


Answer = tuple[int, Any]  # an HTTP status and the JSON document to send (None: no body)

_REASONS = {200: "OK", 204: "No Content", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
            404: "Not Found", 405: "Method Not Allowed", 411: "Length Required", 413: "Content Too Large",
            429: "Too Many Requests", 431: "Request Header Fields Too Large", 503: "Service Unavailable"}


@dataclass(frozen=True)
class Head:
    """A request's line and headers: all the gateway looks at before it reads a body."""

    method: str
    path: str
    authorization: Optional[str]
    content_length: Optional[str]
    transfer_encoding: Optional[str]


def parse_head(raw: bytes) -> Head:
    """The head of a request (up to and with its blank line); raises wire.Refused(400) when malformed.
    The headers are parsed by the standard library's own HTTP parser."""
    line, _, rest = raw.partition(b"\r\n")
    parts = line.decode("latin-1").split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise wire.Refused(400, "not an HTTP/1.x request line")
    try:
        headers = http.client.parse_headers(io.BytesIO(rest))
    except http.client.HTTPException as error:
        raise wire.Refused(400, f"malformed headers ({type(error).__name__})") from None
    return Head(parts[0], parts[1], headers.get("Authorization"), headers.get("Content-Length"),
                headers.get("Transfer-Encoding"))


def admit(key: bytes, head: Head) -> JobKey:
    """The job a request may act on; raises wire.Refused from the head alone, so a stranger's body
    is never read. Tokens are compared in constant time (figures/token.py)."""
    given = wire.bearer(head.authorization)
    if head.method == "POST":
        match = (wire.RECORDS_PATH.match(head.path) or wire.RECOVERIES_PATH.match(head.path)
                 or wire.WORLD_PATH.match(head.path))
        if match is None:
            raise wire.Refused(404, "no such path")
        if given is None:
            raise wire.Refused(401, "a job's bearer token is required")
        namespace, name = match["namespace"], match["name"]
        uid = token.token_uid(key, namespace, name, given)
        if uid is None:
            raise wire.Refused(403, f"the token does not open {namespace}/{name}")
        if head.transfer_encoding is not None:
            raise wire.Refused(411, "a Content-Length is required (no transfer encodings)")
        if body_length(head) is None:
            raise wire.Refused(413, f"a Content-Length of at most {wire.MAX_BODY_BYTES} bytes is required")
        return namespace, name, uid
    if head.method in ("GET", "DELETE"):
        match = wire.JOB_PATH.match(head.path)
        if match is None:
            raise wire.Refused(404, "no such path")
        if given is None or not token.is_reader(key, given):
            raise wire.Refused(401 if given is None else 403, "the reader's token is required")
        return match["namespace"], match["name"], match["uid"]
    raise wire.Refused(405, "only POST, GET and DELETE are served")


def body_length(head: Head) -> Optional[int]:
    """The declared body length of a POST, None unless it is a number in 0..MAX_BODY_BYTES."""
    text = (head.content_length or "").strip()
    if not text.isdigit() or len(text) > 12:
        return None
    length = int(text)
    return length if length <= wire.MAX_BODY_BYTES else None


def serve(collectors: Collectors, method: str, job: JobKey, body: bytes, path: str = "") -> Answer:
    """An admitted request's answer; runs in the worker pool (it may wait on Ray). A POST to a
    job's recoveries path carries one in-place restart, to its world path one rendezvous round's
    world, any other POST step records."""
    told = method == "POST" and wire.RECOVERIES_PATH.match(path) is not None
    world = method == "POST" and wire.WORLD_PATH.match(path) is not None
    if method == "POST":
        try:
            checked: Any = wire.recovery(body) if told else wire.world(body) if world else wire.batch(body)
        except wire.Refused as refused:
            return refused.status, {"error": str(refused)}
    if not collectors.ready.is_set():
        if method == "POST":
            collectors.intake.failed(job, time.monotonic())
        return 503, {"error": "Ray is not up yet"}
    try:
        if told:
            collectors.recovered(job, checked)
            return 204, None
        if world:
            collectors.world(job, checked)
            return 204, None
        if method == "POST":
            collectors.report(job, checked)
            return 204, None
        if method == "DELETE":
            return (200 if collectors.delete(job) else 404), None
        snapshot = collectors.snapshot(job)
    except Exception as error:  # noqa: BLE001 - Ray trouble: the shipper retries, the operator reads again
        log.warning("%s of %s/%s failed: %s", method, job[0], job[1], error)
        return 503, {"error": f"the collector did not answer ({type(error).__name__})"}
    if snapshot is None:
        return 404, {"error": f"no figures for {job[0]}/{job[1]} yet"}
    return 200, snapshot


def encode_answer(status: int, document: Any, retry_after: float = 0) -> bytes:
    body = b"" if document is None else json.dumps(document, separators=(",", ":")).encode()
    extra = f"Retry-After: {int(retry_after)}\r\n" if retry_after else ""
    head = (f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{extra}Connection: close\r\n\r\n")
    return head.encode() + body


class GatewayServer:
    """The HTTP side: one asyncio loop (in one thread) holds every connection, and a fixed pool of
    WORKERS threads does what may block (checking a body, waiting on Ray).

    Why asyncio and not a thread per connection: a connection that is still sending its request
    costs a few kilobytes here, not a thread, so slow clients cannot pin the gateway. The
    standard library's asyncio, not aiohttp: the whole-request deadline (head and body) and the
    connection cap below need the connection itself, which aiohttp's server does not expose
    before a request's head has arrived; the HTTP subset served (one request per connection, a
    Content-Length body) is small, and its headers go through the standard library's parser.

    Bounds: at most `max_connections` open at once; when full, a new connection closes the
    oldest one still sending its request (a legitimate client sends its request at once, so it
    is the slow ones that go), or is closed itself; each connection has `deadline` seconds for
    its whole request and answer; a head is at most MAX_HEAD_BYTES. A job's POSTs past its token
    bucket (`buckets`, gateway/limits.py) are answered 429 from the head, in the loop."""

    def __init__(self, address: tuple[str, int], key: bytes, collectors: Collectors, *,
                 max_connections: int = MAX_CONNECTIONS, deadline: float = REQUEST_DEADLINE,
                 workers: int = WORKERS, buckets: Optional[JobBuckets] = None):
        self.key = key
        self.collectors = collectors
        #: Touched only in the loop's thread: no lock.
        self.buckets = buckets or JobBuckets()
        self.max_connections = max_connections
        self.deadline = deadline
        #: Open connections, oldest first: True while still sending their request.
        self.connections: dict[asyncio.StreamWriter, bool] = {}
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="tandem-gateway")
        self.loop = asyncio.new_event_loop()
        listener = socket.create_server(address, backlog=BACKLOG)
        self.server_address: tuple[str, int] = listener.getsockname()[:2]
        self._server = self.loop.run_until_complete(asyncio.start_server(
            self._connection, sock=listener, limit=MAX_HEAD_BYTES, backlog=BACKLOG))
        self._thread = threading.Thread(target=self.loop.run_forever, name="tandem-metrics-gateway", daemon=True)

    def serve_in_background(self) -> None:
        self._thread.start()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self.connections) >= self.max_connections:
            oldest = next((w for w, reading in self.connections.items() if reading), None)
            if oldest is None:
                writer.transport.abort()
                return
            self.connections.pop(oldest)
            oldest.transport.abort()
        self.connections[writer] = True
        try:
            await asyncio.wait_for(self._request(reader, writer), self.deadline)
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass  # too slow, or gone: nothing to answer
        finally:
            self.connections.pop(writer, None)
            if not writer.transport.is_closing():
                writer.transport.abort()

    async def _request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        path = "-"
        try:
            head = parse_head(await reader.readuntil(b"\r\n\r\n"))
            path = head.path
            job = admit(self.key, head)
        except asyncio.LimitOverrunError:
            return await self._answer(writer, 431, {"error": f"the head is over {MAX_HEAD_BYTES} bytes"}, path)
        except wire.Refused as refused:
            return await self._answer(writer, refused.status, {"error": str(refused)}, path)
        if head.method == "POST":
            wait = self.buckets.take(job, time.monotonic())
            if wait:
                return await self._answer(writer, 429, {"error": f"over {job[0]}/{job[1]}'s rate of POSTs"}, path,
                                          retry_after=wait)
        body = await reader.readexactly(body_length(head) or 0) if head.method == "POST" else b""
        self.connections[writer] = False  # its request is in: no longer one to evict
        status, document = await self.loop.run_in_executor(self.pool, serve, self.collectors, head.method, job, body,
                                                         head.path)
        await self._answer(writer, status, document, head.path)

    async def _answer(self, writer: asyncio.StreamWriter, status: int, document: Any, path: str,
                      retry_after: float = 0) -> None:
        if status >= 400 and status not in (429, 503):  # 429: a flood would flood the log too
            log.info("refused %s: %d %s", path[:200], status, (document or {}).get("error", ""))
        writer.write(encode_answer(status, document, retry_after))
        await writer.drain()
        writer.close()  # after what is buffered is sent
        await writer.wait_closed()

    def shutdown(self) -> None:
        """Stop serving: the listener and every connection close; the loop stops."""
        async def close() -> None:
            self._server.close()
            for writer in list(self.connections):
                writer.transport.abort()

        if self.loop.is_running():
            asyncio.run_coroutine_threadsafe(close(), self.loop).result(timeout=10)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
        self.pool.shutdown(wait=False, cancel_futures=True)

    def server_close(self) -> None:
        if not self.loop.is_running() and not self.loop.is_closed():
            self.loop.close()


def start(key: bytes, collectors: Collectors, host: str, port: int, **bounds: Any) -> GatewayServer:
    """Serve in a daemon thread (answering 503 until `collectors` is connected); returns the server.
    `bounds`: GatewayServer's max_connections, deadline, workers and buckets (tests make them small)."""
    server = GatewayServer((host, port), key, collectors, **bounds)
    server.serve_in_background()
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
