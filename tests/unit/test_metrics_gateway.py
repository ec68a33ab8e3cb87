"""The figures gateway's rules, in milliseconds: tokens, request checks, the HTTP answers, and the
operator's reading of them. The gateway here is the real HTTP server and the real `Collector`
class, held in this process instead of a Ray actor (tests/local/test_metrics_gateway.py runs it
in front of a real Ray)."""

from __future__ import annotations

import contextlib
import json
import math
import socket
import threading
from typing import Any, Iterator, Optional

import pytest

from tandem._sys.gateway_post import BACKOFF_CAP
from tandem.contract import MAX_WORKERS
from tandem.figures import reader, token, wire
from tandem.figures.snapshot import INFO_FIELDS, MAX_RANKS
from tandem.gateway import limits, server as gateway
from tandem.gateway.collector import JOB_RANKS, JOB_RECORDS, KEEP_PER_RANK, Collector
from tests.support.figures import post_oversize, request
from tests.support.waiting import wait_for

KEY = b"k" * 32
UID_A, UID_B = "0b7f0e4e-0000-4000-8000-00000000000a", "0b7f0e4e-0000-4000-8000-00000000000b"
RECORD = [1700000000.0, 64, 0.1, 0.08]


# ------------------------------------------------------------------------- tokens


def test_a_job_token_opens_its_own_job_only():
    mine = token.job_token(KEY, "team-a", "train", UID_A)
    assert token.token_uid(KEY, "team-a", "train", mine) == UID_A
    assert token.token_uid(KEY, "team-b", "train", mine) is None  # another namespace
    assert token.token_uid(KEY, "team-a", "other", mine) is None  # another job
    assert token.token_uid(b"x" * 32, "team-a", "train", mine) is None  # another key
    # The uid before the dot is bound by the MAC: changing it (to reach a new incarnation) fails.
    forged = UID_B + mine[len(UID_A):]
    assert token.token_uid(KEY, "team-a", "train", forged) is None
    assert token.token_uid(KEY, "team-a", "train", "") is None
    assert token.token_uid(KEY, "team-a", "train", "é." + "0" * 64) is None  # non-ASCII: refused, no TypeError


def test_the_reader_token_is_apart_from_every_job_token():
    reader = token.reader_token(KEY)
    assert token.is_reader(KEY, reader) and not token.is_reader(b"x" * 32, reader)
    mine = token.job_token(KEY, "team-a", "train", UID_A)
    assert not token.is_reader(KEY, mine)
    assert token.token_uid(KEY, "team-a", "train", reader) is None


def test_a_reader_token_expires_and_cannot_be_minted_long_lived():
    """A reader token read off the wire opens the figures for minutes, not for the key's life."""
    minted = 1_800_000_000.0
    fresh = token.reader_token(KEY, now=minted)
    assert token.is_reader(KEY, fresh, now=minted)
    assert token.is_reader(KEY, fresh, now=minted + token.READER_SECONDS)
    assert not token.is_reader(KEY, fresh, now=minted + token.READER_SECONDS + token.CLOCK_SKEW_SECONDS + 1)
    # Minted (with the key) for a far future: refused now, whatever its MAC.
    assert not token.is_reader(KEY, token.reader_token(KEY, now=minted + 3600), now=minted)
    assert token.is_reader(KEY, token.reader_token(KEY))  # this moment's token is good now
    # The fixed token of old (HMAC of "read", no expiry) opens nothing, nor do malformed ones.
    import hashlib
    import hmac

    assert not token.is_reader(KEY, hmac.new(KEY, b"read", hashlib.sha256).hexdigest(), now=minted)
    for bad in ("read", "read..", "read.x.y", f"read.{int(minted)}.", "read." + "9" * 40 + ".ab"):
        assert not token.is_reader(KEY, bad, now=minted)


def test_keys_are_long_enough(tmp_path):
    (tmp_path / "short").write_bytes(b"abc\n")
    with pytest.raises(ValueError, match="shorter"):
        token.load_key(str(tmp_path / "short"))
    (tmp_path / "key").write_bytes(KEY + b"\n")
    assert token.load_key(str(tmp_path / "key")) == KEY


# ------------------------------------------------------------------------- request checks


def body(**overrides: Any) -> bytes:
    document = {"worker": 1, "rank": 0, "records": [RECORD], **overrides}
    return json.dumps(document).encode()


def test_a_well_formed_batch_is_accepted():
    batch = wire.batch(body(records=[RECORD, [1.0, 32], [2.0, 32, None, None]]))
    assert (batch.worker, batch.rank) == (1, 0)
    assert batch.records == [RECORD, [1.0, 32.0], [2.0, 32.0]]  # encoded again: unset fields left off the end


@pytest.mark.parametrize("raw, status", [
    (b'{"worker": 0, "rank": 0, "records": [[1.0, NaN, 0.1, null]]}', 400),
    (b'{"worker": 0, "rank": 0, "records": [[1.0, Infinity, 0.1, null]]}', 400),
    (b'{"worker": 0, "rank": 0, "records": [[1.0, 64, -0.1, null]]}', 400),
    (b'{"worker": 0, "rank": 0, "records": [[1.0, 1e999, 0.1, null]]}', 400),  # inf by overflow
    (b'{"worker": 0, "rank": 0, "records": [[1.0, ' + b"9" * 400 + b', 0.1, null]]}', 400),  # past float
    (b'{"worker": 0, "rank": 0, "records": [[1.0, "64", 0.1, null]]}', 400),
    (b'{"worker": 0, "rank": 0, "records": [[1.0, true, 0.1, null]]}', 400),
    (b'{"worker": 0, "rank": 0, "records": [[1.0]]}', 400),
    (body(worker=MAX_WORKERS), 400),
    (body(worker=-1), 400),
    (body(worker=10**30), 400),
    (body(rank=MAX_RANKS), 400),
    (body(worker="0"), 400),
    (body(records=[RECORD] * (wire.MAX_BATCH + 1)), 400),
    (body(extra=1), 400),
    (b"[1, 2]", 400),
    (b"{" * 100_000, 400),
    (b"not json", 400),
    (b" " * (wire.MAX_BODY_BYTES + 1), 413),
])
def test_malformed_batches_are_refused(raw, status):
    with pytest.raises(wire.Refused) as refused:
        wire.batch(raw)
    assert refused.value.status == status


def test_bearer_headers():
    assert wire.bearer("Bearer abc.def") == "abc.def"
    assert wire.bearer("bearer abc") == "abc"
    for header in (None, "", "Basic abc", "Bearer ", "Bearer " + "a" * 201, "Bearer é"):
        assert wire.bearer(header) is None


def test_the_snapshot_is_json_only_and_bounded():
    assert wire.snapshot(b'{"records": {}}') == {"records": {}}
    for raw in (b'{"x": NaN}', b"\x80\x04K\x01.", b" " * (wire.MAX_SNAPSHOT_BYTES + 1)):  # the last: a pickle
        with pytest.raises(ValueError):
            wire.snapshot(raw)


# ------------------------------------------------------------------------- the HTTP server


class InProcessCollectors(gateway.Collectors):
    """The gateway's Ray side, the real `Collectors` but for its calls: they go to the real
    Collector class held here instead of in an actor. `failing`: stores raise, as a Ray call that
    errs or times out."""

    def __init__(self) -> None:
        super().__init__("in-process")
        self.ready.set()
        self.jobs: dict[gateway.JobKey, Collector] = {}
        self.failing = False

    def _call(self, job: gateway.JobKey, create: bool, method: str, *args: Any) -> Any:
        if method == "report" and self.failing:
            raise TimeoutError("the collector did not answer")
        if job not in self.jobs:
            if not create:
                raise ValueError("no collector")  # what collector.lookup raises
            self.jobs[job] = Collector()
        return getattr(self.jobs[job], method)(*args)

    def delete(self, job: gateway.JobKey) -> bool:
        return self.jobs.pop(job, None) is not None


@pytest.fixture
def server():
    collectors = InProcessCollectors()
    served = gateway.start(KEY, collectors, "127.0.0.1", 0)
    served.base = f"http://127.0.0.1:{served.server_address[1]}"  # type: ignore[attr-defined]
    yield served
    served.shutdown()
    served.server_close()


def call(server, method: str, path: str, token: Optional[str] = None, data: Optional[bytes] = None,
         headers: Optional[dict[str, str]] = None) -> tuple[int, bytes]:
    return request(method, server.base + path, token, data, headers, timeout=5)


def test_a_jobs_token_writes_its_figures_and_nothing_else(server):
    mine = token.job_token(KEY, "team-a", "train", UID_A)
    assert call(server, "POST", wire.records_path("team-a", "train"), mine, body(worker=0))[0] == 204
    # Job A's token on job B (another namespace, another name), none, a forged one: refused.
    assert call(server, "POST", wire.records_path("team-b", "train"), mine, body())[0] == 403
    assert call(server, "POST", wire.records_path("team-a", "other"), mine, body())[0] == 403
    assert call(server, "POST", wire.records_path("team-a", "train"), None, body())[0] == 401
    assert call(server, "POST", wire.records_path("team-a", "train"), token.reader_token(KEY), body())[0] == 403
    # A bad batch with a good token: refused before it reaches the collector.
    assert call(server, "POST", wire.records_path("team-a", "train"), mine,
                b'{"worker": 0, "rank": 0, "records": [[1.0, NaN, 0.1, null]]}')[0] == 400
    assert call(server, "POST", wire.records_path("team-a", "train"), mine, body(worker=MAX_WORKERS))[0] == 400
    assert list(server.collectors.jobs) == [("team-a", "train", UID_A)]
    assert server.collectors.jobs[("team-a", "train", UID_A)].totals == {(0, 0): 1}


def test_an_oversize_body_is_refused_unread(server):
    mine = token.job_token(KEY, "team-a", "train", UID_A)
    status = post_oversize(server.base, wire.records_path("team-a", "train"), mine, wire.MAX_BODY_BYTES + 1)
    assert status == 413 and not server.collectors.jobs
    # Job B's token is refused before the size is even looked at.
    other = token.job_token(KEY, "team-b", "train", UID_B)
    assert post_oversize(server.base, wire.records_path("team-a", "train"), other, wire.MAX_BODY_BYTES + 1) == 403


def test_only_the_reader_reads_and_deletes(server):
    mine = token.job_token(KEY, "team-a", "train", UID_A)
    call(server, "POST", wire.records_path("team-a", "train"), mine, body(worker=0))
    path = wire.job_path("team-a", "train", UID_A)
    assert call(server, "GET", path)[0] == 401
    assert call(server, "GET", path, mine)[0] == 403  # a job's own token reads nothing, not even its own
    assert call(server, "DELETE", path, mine)[0] == 403
    status, raw = call(server, "GET", path, token.reader_token(KEY))
    assert status == 200 and json.loads(raw)["totals"] == {"0/0": 1}
    assert call(server, "GET", wire.job_path("team-a", "train", UID_B), token.reader_token(KEY))[0] == 404
    assert call(server, "DELETE", path, token.reader_token(KEY))[0] == 200
    assert call(server, "GET", path, token.reader_token(KEY))[0] == 404


def test_the_operator_reads_figures_through_the_gateway(server):
    for worker in (0, 1):
        records = [[1000.0 + i * 0.1, 64, 0.1, 0.08] for i in range(1, 30)]
        shipped = wire.encode(worker, 0, records)
        assert call(server, "POST", wire.records_path("team-a", "train"),
                    token.job_token(KEY, "team-a", "train", UID_A), shipped)[0] == 204
    status = reader.read(server.base, token.reader_token(KEY), "team-a", "train", UID_A, 2, 640.0, 0.8).metrics
    assert status.available and [w.index for w in status.per_worker] == [0, 1]
    assert math.isclose(status.throughput, 1280.0) and math.isclose(status.scaling_efficiency, 1.0)
    # The wrong reader token, an unknown job: unavailable with the reason, never an exception.
    refused = reader.read(server.base, "nope", "team-a", "train", UID_A, 2, None, 0.8).metrics
    assert not refused.available and "403" in refused.reason
    missing = reader.read(server.base, token.reader_token(KEY), "team-a", "train", UID_B, 2, None, 0.8).metrics
    assert not missing.available and "no figures" in missing.reason


def test_a_snapshot_with_more_workers_than_the_spec_is_cut_to_the_spec(server):
    """The gateway bounds worker indexes by MAX_WORKERS; the operator by the job's own spec."""
    mine = token.job_token(KEY, "team-a", "train", UID_A)
    for worker in (0, 7):
        call(server, "POST", wire.records_path("team-a", "train"), mine,
             wire.encode(worker, 0, [[1000.0 + i * 0.1, 64, 0.1, None] for i in range(1, 10)]))
    status = reader.read(server.base, token.reader_token(KEY), "team-a", "train", UID_A, 2, None, 0.8).metrics
    assert [w.index for w in status.per_worker] == [0] and "outside workers 0..1" in status.reason


class AnswersLate(InProcessCollectors):
    """Applies the first batch, then holds its answer until `release` is set: a POST whose answer
    times out at the shipper after the gateway took it."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.calls = 0

    def report(self, job: gateway.JobKey, batch: wire.Batch) -> None:
        super().report(job, batch)
        self.calls += 1
        if self.calls == 1:
            self.release.wait(30)


def test_a_post_applied_but_answered_too_late_is_not_counted_twice():
    """The shipper's first POST reaches the collector, its answer does not reach the shipper in
    time: it sends those records again with the ones added since. Each step is counted once."""
    from tandem.figures.record import Step
    from tandem.metrics import shipper

    collectors = AnswersLate()
    served = gateway.start(KEY, collectors, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{served.server_address[1]}" + wire.records_path("team-a", "train")
    mine = token.job_token(KEY, "team-a", "train", UID_A)
    outbox = shipper.Outbox()
    try:
        outbox.add([Step(float(t), 64.0) for t in range(10)])
        with pytest.raises(OSError):  # the answer is not back within the shipper's timeout
            shipper.ship(url, mine, 0, 0, outbox, timeout=0.2)
        collectors.release.set()
        assert len(outbox.records) == 10  # kept, as after any failed POST
        outbox.add([Step(float(t), 64.0) for t in range(10, 15)])
        shipper.ship(url, mine, 0, 0, outbox, timeout=5)
        collector = collectors.jobs[("team-a", "train", UID_A)]
        assert collectors.calls == 2 and collector.totals == {(0, 0): 15}
        assert [r[0] for r in collector.records[(0, 0)]] == [float(t) for t in range(15)]
        # The same numbers from a shipper started again (a new stream) are new records.
        again = shipper.Outbox()
        again.add([Step(100.0, 64.0)])
        shipper.ship(url, mine, 0, 0, again, timeout=5)
        assert collector.totals == {(0, 0): 16}
    finally:
        collectors.release.set()
        served.shutdown()
        served.server_close()


def test_numbered_batches_skip_what_was_applied_and_memory_stays_one_entry_per_rank():
    collector = Collector(ranks=2)
    record = [1.0, 64.0]
    assert collector.report(0, 0, [record] * 4, None, "s1", 0) == 4
    assert collector.report(0, 0, [record] * 4, None, "s1", 0) == 4  # the same batch again
    assert collector.report(0, 0, [record] * 6, None, "s1", 2) == 8  # overlaps two, adds four (2..7)
    assert collector.report(0, 0, [record] * 2, None, "s1", 20) == 10  # a gap (the shipper dropped some)
    assert collector.report(0, 0, [record] * 3, None, "s1", 5) == 10  # all before 22: applied already
    assert collector.report(0, 0, [record] * 2, None, "s2", 0) == 12  # a new shipper process
    assert collector.report(0, 0, [record]) == 13  # unnumbered (an older shipper): taken as it comes
    for rank in range(1, 5):
        collector.report(0, rank, [record], None, "s", 0)
    assert len(collector.applied) == 2  # bounded with the ranks kept


@pytest.mark.parametrize("extra", [{"stream": "s"}, {"first": 0}, {"stream": "", "first": 0},
                                   {"stream": "a/b", "first": 0}, {"stream": "s" * 33, "first": 0},
                                   {"stream": "s", "first": -1}, {"stream": "s", "first": 10**16},
                                   {"stream": "s", "first": True}, {"stream": 5, "first": 0}])
def test_a_malformed_sequence_is_refused(extra):
    with pytest.raises(wire.Refused):
        wire.batch(body(**extra))
    assert wire.batch(body(stream="ab12", first=7)).first == 7


def test_a_jobs_bucket_refills_at_its_rate_and_memory_is_bounded():
    buckets = limits.JobBuckets(rate=2.0, burst=3.0, jobs=2)
    assert [buckets.take("a", 0.0) for _ in range(4)] == [0.0, 0.0, 0.0, 1.0]  # a burst of 3, then wait
    assert buckets.take("b", 0.0) == 0.0  # another job has a bucket of its own
    assert buckets.take("a", 0.5) == 0.0 and buckets.take("a", 0.5) == 1.0  # half a second: one POST
    assert buckets.take("a", 100.0) == 0.0 and buckets.buckets["a"].tokens == 2.0  # full again, not past it
    buckets.take("c", 100.0)
    assert list(buckets.buckets) == ["a", "c"]  # past `jobs`, the least recently seen is forgotten
    assert limits.JobBuckets(rate=0.1, burst=1.0).take("a", 0.0) == 0.0
    slow = limits.JobBuckets(rate=0.1, burst=1.0)
    slow.take("a", 0.0)
    assert slow.take("a", 0.0) == 10.0  # a whole number of seconds until the next token


def test_the_rate_lets_the_largest_honest_job_post_every_second():
    from tandem.metrics import shipper

    assert limits.POSTS_PER_SECOND >= JOB_RANKS / shipper.SHIP_EVERY
    assert limits.BURST >= limits.POSTS_PER_SECOND


def test_a_flood_from_one_job_is_throttled_while_another_is_served():
    """Job A posts past its bucket: 429 with Retry-After, answered from the head, and its records
    stay with the shipper (ship raises NotYet, the outbox keeps them); job B is served meanwhile."""
    from tandem.figures.record import Step
    from tandem.metrics import shipper

    collectors = InProcessCollectors()
    served = gateway.start(KEY, collectors, "127.0.0.1", 0,
                           buckets=limits.JobBuckets(rate=0.001, burst=3))  # no refill within the test
    base = f"http://127.0.0.1:{served.server_address[1]}"
    a, b = token.job_token(KEY, "team-a", "train", UID_A), token.job_token(KEY, "team-b", "train", UID_B)
    try:
        answers = [request("POST", base + wire.records_path("team-a", "train"), a, body(worker=0), None, 5)
                   for _ in range(10)]
        assert [status for status, _ in answers] == [204] * 3 + [429] * 7
        assert collectors.jobs[("team-a", "train", UID_A)].totals == {(0, 0): 3}
        assert request("POST", base + wire.records_path("team-b", "train"), b, body(worker=0), None, 5)[0] == 204
        with pytest.raises(shipper.NotYet) as throttled:
            shipper.post(base + wire.records_path("team-a", "train"), a, body(worker=0), 5)
        assert "429" in str(throttled.value) and throttled.value.retry_after == BACKOFF_CAP  # capped
        outbox = shipper.Outbox()
        outbox.add([Step(1.0, 64.0)])
        with pytest.raises(shipper.NotYet):
            shipper.ship(base + wire.records_path("team-a", "train"), a, 0, 0, outbox, 5)
        assert len(outbox.records) == 1  # kept for the next try
    finally:
        served.shutdown()
        served.server_close()


def test_a_retry_after_is_followed_up_to_the_backoff_cap():
    from tandem.metrics import shipper

    assert shipper.retry_after("3") == 3.0 and shipper.retry_after(None) == 0.0
    assert shipper.retry_after("soon") == 0.0 and shipper.retry_after("100000") == BACKOFF_CAP


def test_the_gateway_says_when_it_last_stored_a_jobs_records_and_when_a_store_failed(server):
    """Reads can succeed while stores fail: each snapshot says how the job's stores went, and the
    operator's reader turns it into status.metrics.ingestedAt / ingestInterruptedAt (the hang
    clock's cue, figures/progress.py)."""
    mine = token.job_token(KEY, "team-a", "train", UID_A)
    path, records = wire.records_path("team-a", "train"), wire.job_path("team-a", "train", UID_A)
    assert call(server, "POST", path, mine, body(worker=0))[0] == 204
    status, raw = call(server, "GET", records, token.reader_token(KEY))
    ingest = json.loads(raw)["ingest"]
    assert status == 200 and set(ingest) == {"okAgo", "upAgo"} and ingest["okAgo"] <= ingest["upAgo"]
    read = reader.read(server.base, token.reader_token(KEY), "team-a", "train", UID_A, 1, None, 0.8).metrics
    assert read.available and read.ingested_at is not None
    assert read.ingest_interrupted_at is not None and read.ingest_interrupted_at <= read.ingested_at  # the start
    server.collectors.failing = True  # the job's collector errs on stores; reads still work
    assert call(server, "POST", path, mine, body(worker=0))[0] == 503
    ingest = json.loads(call(server, "GET", records, token.reader_token(KEY))[1])["ingest"]
    assert ingest["failedAgo"] <= ingest["okAgo"]
    read = reader.read(server.base, token.reader_token(KEY), "team-a", "train", UID_A, 1, None, 0.8).metrics
    assert read.available and read.ingest_interrupted_at >= read.ingested_at
    # Another job's stores went well: its snapshot says no failure.
    other = token.job_token(KEY, "team-a", "other", UID_B)
    server.collectors.failing = False
    assert call(server, "POST", wire.records_path("team-a", "other"), other, body(worker=0))[0] == 204
    ingest = json.loads(call(server, "GET", wire.job_path("team-a", "other", UID_B), token.reader_token(KEY))[1])["ingest"]
    assert "failedAgo" not in ingest


def test_the_intake_record_is_bounded_and_an_ingest_mapping_is_checked():
    from tandem.figures.snapshot import check
    from tandem.gateway.health import Intake

    intake = Intake(now=100.0, jobs=2)
    intake.ok("a", 110.0)
    intake.failed("a", 115.0)
    assert intake.ages("a", 120.0) == {"upAgo": 20.0, "okAgo": 10.0, "failedAgo": 5.0}
    intake.ok("b", 116.0)
    intake.ok("c", 117.0)
    assert intake.ages("a", 120.0) == {"upAgo": 20.0}  # forgotten: the least recently seen of three
    checked = check({"ingest": {"okAgo": 1.5, "failedAgo": -1, "upAgo": float("nan"), "x": 1}}, 1)
    assert checked.ingest == {"okAgo": 1.5} and len(checked.dropped) == 3
    assert check({"ingest": [1]}, 1).ingest == {} and check({}, 1).ingest == {}


def test_the_operator_process_never_loads_ray():
    """Beside the import-linter contract (static): the operator's modules, loaded for real, and
    a metrics read through them, leave Ray out of the process."""
    import subprocess
    import sys

    from tests.conftest import REPO

    code = ("import sys; import tandem.cli.operator, tandem.controller.main, tandem.controller.runtime; "
            "from tandem.figures import reader; reader.read('http://127.0.0.1:9', 'r', 'n', 'j', 'u', 1, None, 0.8).metrics; "
            "assert not [m for m in sys.modules if m == 'ray' or m.startswith('ray.')], 'ray loaded'")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO / "operator")})
    assert done.returncode == 0, done.stderr


# ------------------------------------------------------------------------- abuse


SLOW_CLIENTS = 300
SLOW_HEAD = b"POST /v1/jobs/team-a/train/records HTTP/1.1\r\nHost: gateway\r\n"


@contextlib.contextmanager
def slow_clients(base: str, count: int = SLOW_CLIENTS) -> Iterator[list[socket.socket]]:
    """`count` token-less connections on loopback, each sending the start of a head byte by byte
    (a few rounds) and never finishing it; closed on leaving."""
    port = int(base.rsplit(":", 1)[1])
    opened: list[socket.socket] = []
    try:
        for _ in range(count):
            opened.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        for position in range(8):
            for client in opened:
                with contextlib.suppress(OSError):  # one the gateway closed already
                    client.send(SLOW_HEAD[position:position + 1])
        yield opened
    finally:
        for client in opened:
            client.close()


def posted_and_read(server) -> bool:
    """A legitimate POST and the reader's GET of what it posted, both served."""
    mine = token.job_token(KEY, "team-a", "train", UID_A)
    posted = call(server, "POST", wire.records_path("team-a", "train"), mine, body(worker=0))[0]
    read = call(server, "GET", wire.job_path("team-a", "train", UID_A), token.reader_token(KEY))[0]
    return (posted, read) == (204, 200)


def test_slow_token_less_clients_hold_no_threads_and_stop_no_one(server):
    """Connections still sending their heads cost the gateway no thread: its threads stay its
    loop's and its pool's, and a legitimate client is served beside them."""
    before = threading.active_count()  # the test's own threads and the gateway's loop
    with slow_clients(server.base):
        assert posted_and_read(server)
        assert threading.active_count() <= before + gateway.WORKERS
        # The legitimate client's connection leaves the table just after its answer is sent.
        wait_for("the served connections closed", lambda: len(server.connections) <= SLOW_CLIENTS,
                 timeout=30, interval=0.01)


def test_when_the_connections_are_full_the_slowest_go_first():
    """Past its cap, the gateway closes the oldest connection still sending its request, so
    stalled clients cannot lock out a legitimate one however many they open."""
    served = gateway.start(KEY, InProcessCollectors(), "127.0.0.1", 0, max_connections=16)
    served.base = f"http://127.0.0.1:{served.server_address[1]}"  # type: ignore[attr-defined]
    try:
        with slow_clients(served.base):  # type: ignore[attr-defined]
            assert len(served.connections) <= 16
            assert posted_and_read(served)
    finally:
        served.shutdown()
        served.server_close()


def test_a_request_has_one_deadline_for_all_of_it():
    """A client that keeps sending a byte now and then is closed at the deadline all the same
    (a timeout per receive would keep it forever)."""
    served = gateway.start(KEY, InProcessCollectors(), "127.0.0.1", 0, deadline=1.0)
    client = socket.create_connection(("127.0.0.1", served.server_address[1]), timeout=10)
    client.send(SLOW_HEAD + b"X-Slow: ")

    def closed() -> bool:
        try:
            client.send(b"a")
            return client.recv(1, socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False  # open, nothing to read
        except OSError:
            return True  # reset: closed

    try:
        wait_for("the gateway to close a drip-feeding client", closed, timeout=60, interval=0.05)
    finally:
        client.close()
        served.shutdown()
        served.server_close()


def test_a_bad_token_is_refused_before_the_body_is_read(server):
    """A head declaring a full-size body that never comes: a stranger is answered at once."""
    path = wire.records_path("team-a", "train")
    other = token.job_token(KEY, "team-b", "train", UID_B)
    assert post_oversize(server.base, path, other, wire.MAX_BODY_BYTES) == 403
    assert post_oversize(server.base, path, "nope", wire.MAX_BODY_BYTES) == 403
    assert post_oversize(server.base, path, token.reader_token(KEY), wire.MAX_BODY_BYTES) == 403
    assert not server.collectors.jobs


def test_a_collector_filled_past_its_cap_keeps_reads_bounded(server):
    """A job posting far more than it needs (60 ranks of full histories) is read back at most
    JOB_RECORDS records, each rank's newest."""
    mine = token.job_token(KEY, "team-a", "train", UID_A)
    ranks = JOB_RECORDS // KEEP_PER_RANK + 10
    for rank in range(ranks):
        records = [[1000.0 + i, 64, 0.1, 0.08] for i in range(KEEP_PER_RANK)]
        assert call(server, "POST", wire.records_path("team-a", "train"), mine, wire.encode(0, rank, records))[0] == 204
    status, raw = call(server, "GET", wire.job_path("team-a", "train", UID_A), token.reader_token(KEY))
    snapshot = json.loads(raw)
    assert status == 200 and len(snapshot["records"]) == ranks
    assert sum(len(kept) for kept in snapshot["records"].values()) <= JOB_RECORDS
    assert all(kept[-1][0] == 1000.0 + KEEP_PER_RANK - 1 for kept in snapshot["records"].values())
    assert snapshot["totals"]["0/0"] == KEEP_PER_RANK  # what was posted is still counted


def test_a_collector_keeps_its_most_recent_ranks_and_its_widest_snapshot_fits_a_read():
    few = Collector(ranks=4)
    for rank in range(10):
        few.report(0, rank, [RECORD])
    assert sorted(few.snapshot()["records"]) == ["0/6", "0/7", "0/8", "0/9"]
    # Every rank the cap allows, every number at its widest, the whole record budget used.
    widest = [[1.2345678901234567e+300] * 5] * KEEP_PER_RANK
    info = {name: bound for name, (_, bound) in INFO_FIELDS.items()}
    full = Collector()
    for rank in range(JOB_RANKS):
        full.report(rank // MAX_RANKS, rank % MAX_RANKS, widest[:1], info)
    for rank in range(JOB_RECORDS // KEEP_PER_RANK):
        full.report(rank // MAX_RANKS, rank % MAX_RANKS, widest, info)
    assert full.stored <= JOB_RECORDS
    assert len(json.dumps(full.snapshot(), separators=(",", ":"))) <= wire.MAX_SNAPSHOT_BYTES


def test_the_reader_refuses_an_answer_over_its_cap_unread():
    """Whatever answers in the gateway's place, the operator reads no more than the cap."""
    listener = socket.create_server(("127.0.0.1", 0))
    sent = threading.Event()

    def answer_huge() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                               b"Content-Length: 1000000000\r\n\r\n" + b" " * 1024)
            sent.wait(60)  # the rest never comes: a reader that waits for it times out

    threading.Thread(target=answer_huge, daemon=True).start()
    try:
        status = reader.read(f"http://127.0.0.1:{listener.getsockname()[1]}", "r", "n", "j", "u",
                                     1, None, 0.8, timeout=30).metrics
    finally:
        sent.set()
        listener.close()
    assert not status.available and "over" in status.reason


# ------------------------------------------------------------------------- in-place restarts


def test_launchers_tell_in_place_restarts_and_the_operator_counts_them_once(server):
    """The cluster's path of an in-place restart, every piece real but Ray and the API server: two
    launchers' tellers post their records of one restart (the killed rank's, and its peer's later
    one) with the job's token; the operator's read brings them back checked, counts one restart
    told by its root cause, and names one event; the next read of the same records adds nothing."""
    from tandem.controller.policy.metrics import with_recoveries
    from tandem.launch import recovery
    from tandem.launch.teller import Teller

    env = {"TANDEM_METRICS_ADDRESS": server.base, "TANDEM_METRICS_TOKEN": token.job_token(KEY, "team-a", "train", UID_A),
           "TANDEM_JOB": "train", "TANDEM_NAMESPACE": "team-a"}
    for worker, rank, code, at in ((0, 0, 1, 1_800_000_001.0), (1, 1, 137, 1_800_000_000.0)):
        teller = Teller.from_env(env)
        assert teller is not None
        teller.tell(recovery.recovery_record(worker, rank, code, "SIGKILL" if code == 137 else "Error", 2.0, 1, at, 0))
        assert teller.flush(5.0)
    read = reader.read(server.base, token.reader_token(KEY), "team-a", "train", UID_A, 2, None, 0.8)
    assert len(read.recoveries) == 2
    status, events = with_recoveries({"phase": "Running", "restarts": 0}, read.recoveries)
    assert status["inPlaceRestarts"] == 1
    assert [(r["worker"], r["exitCode"], r["round"]) for r in status["recoveries"]] == [(1, 137, 1)]
    assert [(e.type, e.reason) for e in events] == [("Normal", "RecoveredInPlace")]
    assert "worker 1 rank 1 exit 137 (SIGKILL)" in events[0].message
    again, more = with_recoveries(status, reader.read(server.base, token.reader_token(KEY), "team-a", "train", UID_A,
                                                      2, None, 0.8).recoveries)
    assert again["inPlaceRestarts"] == 1 and more == []
    # Another job's token posts nothing to this job; a malformed record is refused before the collector.
    other = token.job_token(KEY, "team-b", "train", UID_B)
    good = json.dumps(recovery.recovery_record(0, 0, 1, "Error", 1.0, 2, 1_800_000_100.0, 0)).encode()
    assert call(server, "POST", wire.recoveries_path("team-a", "train"), other, good)[0] == 403
    assert call(server, "POST", wire.recoveries_path("team-a", "train"), env["TANDEM_METRICS_TOKEN"],
                good.replace(b'"exitCode": 1', b'"exitCode": -1'))[0] == 400
    assert len(server.collectors.jobs[("team-a", "train", UID_A)].recoveries) == 2


def test_a_recovery_post_is_one_bounded_record_of_exactly_its_fields():
    from tandem.launch import recovery

    record = recovery.recovery_record(1, 3, 137, "SIGKILL", 2.5, 4, 1_800_000_000.25, 1)
    assert wire.recovery(json.dumps(record).encode()) == {**record, "seconds": 2.5, "failedAt": 1_800_000_000.25}
    for broken in ({**record, "extra": 1}, {k: v for k, v in record.items() if k != "round"}, {**record, "worker": True},
                   {**record, "worker": MAX_WORKERS}, {**record, "seconds": -1}, {**record, "exitCode": 256},
                   {**record, "reason": "x" * 65}, {**record, "reason": "a\nb"}, {**record, "recovered": "GroupRestart"},
                   [record], "text"):
        with pytest.raises(wire.Refused) as refused:
            wire.recovery(json.dumps(broken).encode())
        assert refused.value.status == 400, broken
    with pytest.raises(wire.Refused, match="is not a number"):
        wire.recovery(json.dumps(record).replace("2.5", "NaN").encode())
    with pytest.raises(wire.Refused) as too_big:
        wire.recovery(b" " * (wire.MAX_RECOVERY_BYTES + 1))
    assert too_big.value.status == 413


def test_a_collector_keeps_the_latest_recoveries_and_a_read_checks_them_again():
    from tandem.figures.snapshot import MAX_TOLD, check
    from tandem.gateway.collector import KEEP_RECOVERIES
    from tandem.launch import recovery

    assert MAX_TOLD == KEEP_RECOVERIES  # a read looks at every record a collector can hold
    collector = Collector()
    for round_ in range(KEEP_RECOVERIES + 10):
        collector.recovered(recovery.recovery_record(round_ % 3, 0, 1, "Error", 1.0, round_, 1_800_000_000.0 + round_, 0))
    snapshot = collector.snapshot()
    assert len(snapshot["recoveries"]) == KEEP_RECOVERIES and snapshot["recoveries"][0]["round"] == 10
    # The operator trusts nothing of it: a worker outside the spec, a forged field, a wrong type are dropped.
    snapshot["recoveries"][-1]["exitCode"] = "137"
    snapshot["recoveries"][-2]["sneaky"] = True
    checked = check(snapshot, workers=2)  # worker 2's records are outside a 2-worker spec
    assert all(told[2].worker in (0, 1) for told in checked.recoveries)
    outside = sum(1 for r in snapshot["recoveries"][:-2] if r["worker"] == 2)
    assert len(checked.recoveries) == KEEP_RECOVERIES - 2 - outside
    assert f"{outside + 2} recovery record(s)" in (checked.reason() or "")


# ------------------------------------------------------------------------- an elastic job's world size


def test_launchers_tell_each_rounds_world_and_the_operator_shows_the_newest(server):
    """The cluster's path of an elastic job's world size, every piece real but Ray and the API
    server: launchers' world tellers post rounds out of order (a retried post of an older round
    arrives last); the operator's read gives the newest round's world size (restart, then round),
    which status.worldSize takes; a read without a world keeps what status holds."""
    from tandem.contract import WORLD_PATH
    from tandem.controller.policy.metrics import with_world
    from tandem.launch import recovery
    from tandem.launch.teller import Teller

    env = {"TANDEM_METRICS_ADDRESS": server.base, "TANDEM_METRICS_TOKEN": token.job_token(KEY, "team-a", "train", UID_A),
           "TANDEM_JOB": "train", "TANDEM_NAMESPACE": "team-a"}
    teller = Teller.from_env(env, WORLD_PATH)
    assert teller is not None and teller.url.endswith("/v1/jobs/team-a/train/world")

    def newest_world(*told: tuple[int, int, int, int]) -> Optional[int]:
        for round_, nodes, size, restart in told:
            teller.tell(recovery.world_record(round_, nodes, size, restart))
        assert teller.flush(5.0)
        return reader.read(server.base, token.reader_token(KEY), "team-a", "train", UID_A, 2, None, 0.8).world_size

    assert newest_world((1, 2, 2, 0)) == 2
    assert newest_world((2, 1, 1, 0), (2, 1, 1, 0)) == 1  # the survivor alone (each launcher tells its round)
    assert newest_world((3, 2, 2, 0), (2, 1, 1, 0)) == 2  # grown back; the late word of round 2 changes nothing
    assert newest_world((1, 1, 1, 1)) == 1  # a whole-group restart's rounds start again from 1
    status = with_world({"phase": "Running", "worldSize": 2}, 1)
    assert status["worldSize"] == 1 and with_world(status, None) == status
    # Another job's token posts nothing to this job; a malformed world is refused before the collector.
    good = json.dumps(recovery.world_record(9, 2, 2, 1)).encode()
    other = token.job_token(KEY, "team-b", "train", UID_B)
    assert call(server, "POST", wire.world_path("team-a", "train"), other, good)[0] == 403
    assert call(server, "POST", wire.world_path("team-a", "train"), env["TANDEM_METRICS_TOKEN"],
                good.replace(b'"worldSize": 2', b'"worldSize": -2'))[0] == 400
    assert server.collectors.jobs[("team-a", "train", UID_A)].newest_world == recovery.world_record(1, 1, 1, 1)


def test_a_world_post_is_one_bounded_record_of_exactly_its_fields():
    from tandem.figures.snapshot import check
    from tandem.launch import recovery

    record = recovery.world_record(4, 2, 16, 1)
    assert wire.world(json.dumps(record).encode()) == record
    for broken in ({**record, "extra": 1}, {k: v for k, v in record.items() if k != "round"}, {**record, "nodes": True},
                   {**record, "nodes": MAX_WORKERS + 1}, {**record, "worldSize": 2 * MAX_RANKS + 1},
                   {**record, "round": 1.5}, [record], "text"):
        with pytest.raises(wire.Refused) as refused:
            wire.world(json.dumps(broken).encode())
        assert refused.value.status == 400, broken
    with pytest.raises(wire.Refused) as too_big:
        wire.world(b" " * (wire.MAX_RECOVERY_BYTES + 1))
    assert too_big.value.status == 413
    # The operator checks the snapshot's world again: a malformed one is dropped and named, never
    # shown; one of more nodes than spec.workers is shown (a scale-down's next round is yet to come).
    assert check({"world": record}, 2).world_size == 16
    assert check({"world": record}, 1).world_size == 16
    broken_world = check({"world": {**record, "worldSize": "16"}}, 2)
    assert broken_world.world_size is None and "world" in (broken_world.reason() or "")
    assert check({}, 2).world_size is None and check({}, 2).reason() is None
