"""The figures gateway (`python -m tandem.gateway`, as the chart runs it beside the Ray
head) in front of a real Ray: real shipper processes post through it, the collectors are real
Ray actors, and the operator's reader reads them back. One job's token cannot touch another's."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tandem._sys.ports import free_port
from tandem.figures import reader, token, wire
from tests.conftest import REPO
from tests.support.figures import figures_gateway, post_oversize, request as http
from tests.support.processes import stop_group
from tests.support.waiting import wait_for

pytestmark = pytest.mark.local

UID_A, UID_B = "a0000000-0000-4000-8000-000000000001", "b0000000-0000-4000-8000-000000000002"
REPORTER = """
import time
from tandem import metrics
r = metrics.reporter()
assert r.enabled
for _ in range(60):
    time.sleep(0.01)
    r.step(samples=64)
"""




def answered(url: str, bearer: str) -> int:
    """The status of a GET, 0 while nothing listens yet."""
    try:
        return http("GET", url, bearer)[0]
    except OSError:
        return 0


@pytest.fixture
def gateway(tmp_path):
    """`python -m tandem.gateway` on loopback, a Ray driver of a real private Ray."""
    with figures_gateway(tmp_path / "ray") as ray:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("TANDEM_")}
        env.update({k: v for k, v in ray._helper_env.items() if k.startswith("RAY_")})
        env["PYTHONPATH"] = str(REPO / "operator")
        log = (tmp_path / "gateway.log").open("w")
        process = subprocess.Popen([sys.executable, "-m", "tandem.gateway", "--host", "127.0.0.1",
                                    "--port", str(port), "--ray-address", f"127.0.0.1:{ray.port}",
                                    "--key-file", str(ray.key_file)],  # type: ignore[attr-defined]
                                   env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        base = f"http://127.0.0.1:{port}"
        key = ray.key.encode()
        probe = wire.job_path("probe", "probe", "probe")
        try:
            # Up and connected once a reader's GET is no longer "not yet" (503).
            wait_for("the gateway connected to Ray", lambda: answered(base + probe, token.reader_token(key)) == 404,
                     timeout=180, interval=0.5, explain=lambda: (tmp_path / "gateway.log").read_text())
            yield base, key
        finally:
            stop_group(process, grace=5)


def post(base: str, bearer: str | None, namespace: str, name: str, data: bytes) -> int:
    return http("POST", base + wire.records_path(namespace, name), bearer, data)[0]


def snapshot(base: str, key: bytes, namespace: str, name: str, uid: str) -> dict:
    status, raw = http("GET", base + wire.job_path(namespace, name, uid), token.reader_token(key))
    assert status == 200, (status, raw)
    return json.loads(raw)


def test_only_a_jobs_own_token_writes_its_figures_and_only_the_reader_reads_them(gateway, tmp_path):
    base, key = gateway
    token_a = token.job_token(key, "team-a", "train", UID_A)
    token_b = token.job_token(key, "team-b", "train", UID_B)

    # Job A's worker, a real training process: its reporter's shipper posts through the gateway.
    env = {**os.environ, "PYTHONPATH": str(REPO / "operator"), "TANDEM_JOB": "train", "TANDEM_NAMESPACE": "team-a",
           "TANDEM_WORKER_INDEX": "0", "TANDEM_METRICS": "1", "TANDEM_METRICS_ADDRESS": base,
           "TANDEM_METRICS_TOKEN": token_a}
    done = subprocess.run([sys.executable, "-c", REPORTER], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "without metrics" not in done.stderr, done.stderr
    before = snapshot(base, key, "team-a", "train", UID_A)
    assert before["totals"] == {"0/0": 59}  # every step but the first is timed

    # Job B's token, no token, the reader's token: none writes job A's figures.
    record = wire.encode(1, 0, [[1.0, 10**6, 0.001, None]])
    assert post(base, token_b, "team-a", "train", record) == 403
    assert post(base, None, "team-a", "train", record) == 401
    assert post(base, token.reader_token(key), "team-a", "train", record) == 403
    # A's own token with a NaN, a negative number, a huge worker index, an oversize body: refused.
    assert post(base, token_a, "team-a", "train", b'{"worker":0,"rank":0,"records":[[1.0,NaN,0.1,null]]}') == 400
    assert post(base, token_a, "team-a", "train", wire.encode(0, 0, [[1.0, -64, 0.1, None]])) == 400
    assert post(base, token_a, "team-a", "train", wire.encode(10**9, 0, [[1.0, 64, 0.1, None]])) == 400
    assert post_oversize(base, wire.records_path("team-a", "train"), token_a, wire.MAX_BODY_BYTES + 1) == 413
    after = snapshot(base, key, "team-a", "train", UID_A)
    assert after["totals"] == before["totals"] and after["records"] == before["records"]

    # Job B writes its own figures, in a collector of its own.
    assert post(base, token_b, "team-b", "train", record) == 204
    assert snapshot(base, key, "team-b", "train", UID_B)["totals"] == {"1/0": 1}
    assert snapshot(base, key, "team-a", "train", UID_A)["totals"] == {"0/0": 59}

    # Reading: nobody without the reader token, not even job A of its own figures.
    path = base + wire.job_path("team-a", "train", UID_A)
    assert http("GET", path)[0] == 401
    assert http("GET", path, token_a)[0] == 403
    assert http("GET", base + wire.job_path("team-b", "train", UID_B), token_a)[0] == 403
    # The operator's reader: bounded JSON in, figures out.
    figures = reader.read(base, token.reader_token(key), "team-a", "train", UID_A, 1, None, 0.8).metrics
    assert figures.available and [w.index for w in figures.per_worker] == [0] and figures.throughput > 0

    # Deleting needs the reader token too.
    assert http("DELETE", path, token_a)[0] == 403
    assert http("DELETE", path, token.reader_token(key))[0] == 200
    assert http("GET", path, token.reader_token(key))[0] == 404
