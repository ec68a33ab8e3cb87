"""The shipper against a gateway that fails for a while: a real shipper process and a real
(standard-library) HTTP server that answers 503 during a blip, then takes records again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tandem._sys.gateway_post import BACKOFF_CAP, backoff
from tandem.contract import ENV_JOB, ENV_METRICS_ADDRESS, ENV_METRICS_TOKEN, ENV_NAMESPACE, ENV_RUN_DIR
from tandem.figures.record import Step
from tandem.metrics import shipper
from tests.conftest import REPO


class Gateway(ThreadingHTTPServer):
    """Takes records (remembering each step's `t`) unless `failing`, when it answers 503."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.failing = False
        self.refused = 0
        self.steps: list[float] = []
        self.lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    server: Gateway
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.lock:
            if self.server.failing:
                self.server.refused += 1
                status = 503
            else:
                self.server.steps.extend(record[0] for record in json.loads(body)["records"])
                status = 204
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()


def _until(condition: Any, what: str, limit: float = 60.0) -> None:
    """Poll `condition` (a bound on waiting, not on speed: the shipper may take its backoff)."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {limit:.0f} s")
        time.sleep(0.05)


def _send(process: subprocess.Popen[bytes], first: int, count: int) -> None:
    assert process.stdin is not None
    line = json.dumps([[float(first + i), 1.0] for i in range(count)]) + "\n"
    process.stdin.write(line.encode())
    process.stdin.flush()


def test_records_sent_after_a_503_blip_arrive_and_the_delay_is_said_once(tmp_path):
    gateway = Gateway()
    threading.Thread(target=gateway.serve_forever, daemon=True).start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TANDEM_")}
    env.update({ENV_METRICS_ADDRESS: f"http://127.0.0.1:{gateway.server_address[1]}", ENV_METRICS_TOKEN: "t",
                ENV_NAMESPACE: "default", ENV_JOB: "blip", ENV_RUN_DIR: str(tmp_path),
                "PYTHONPATH": str(REPO / "operator")})
    process = subprocess.Popen([sys.executable, "-m", "tandem.metrics.shipper"], env=env, stdin=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    try:
        _send(process, 0, 10)
        _until(lambda: len(gateway.steps) == 10, "the first records delivered")
        gateway.failing = True
        _send(process, 10, 10)
        _until(lambda: gateway.refused >= 2, "the shipper trying again during the outage")
        gateway.failing = False
        _send(process, 20, 10)
        _until(lambda: len(gateway.steps) >= 30, "the records of and after the outage delivered")
        assert sorted(gateway.steps) == [float(i) for i in range(30)]
        assert process.poll() is None  # still shipping
    finally:
        try:
            _, err = process.communicate(timeout=30)  # closes stdin: the shipper flushes and exits
        except BrokenPipeError:  # a shipper that already exited
            err = process.stderr.read() if process.stderr else b""
        gateway.shutdown()
    said = err.decode()
    assert said.count("figures delayed") == 1, said
    assert said.count("figures resumed") == 1, said
    assert "training goes on without metrics" not in said


def test_backoff_is_capped_jittered_and_well_inside_the_shortest_progress_deadline():
    from tandem.contract import MIN_PROGRESS_DEADLINE_SECONDS

    delays = [backoff(attempt) for attempt in range(50)]
    assert all(0 < d <= BACKOFF_CAP for d in delays)
    assert delays[0] < delays[5]  # it grows
    assert len({round(backoff(20), 6) for _ in range(20)}) > 1  # jittered
    # After the gateway comes back, records flow within one capped wait and one ship interval:
    # well inside the shortest deadline, so the resumed hang clock sees steps before it runs out.
    assert BACKOFF_CAP + shipper.SHIP_EVERY + shipper.CALL_TIMEOUT < MIN_PROGRESS_DEADLINE_SECONDS


def test_pending_keeps_the_newest_records_past_the_bound():
    records = [Step(float(i), 1.0) for i in range(10)]
    kept, dropped = shipper.bounded(records, 4)
    assert [r.t for r in kept] == [6.0, 7.0, 8.0, 9.0] and dropped == 6
    assert shipper.bounded(records, 20) == (records, 0)
