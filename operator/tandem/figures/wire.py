"""What goes over the figures gateway's HTTP interface, checked: pure, no I/O.

The gateway checks every request *before* anything reaches Ray, so the collector only ever
holds bounded, well-formed records, whoever posted them:

- ``POST /v1/jobs/<namespace>/<name>/records`` (a job's write token) with the body
  ``{"worker": i, "rank": r, "records": [<step>, ...]}``: ``worker`` below MAX_WORKERS, ``rank``
  below MAX_RANKS, at most MAX_BATCH records, each a step as figures/record.py encodes it (every
  number finite and non-negative), the body at most MAX_BODY_BYTES of JSON. An
  optional ``"info"`` carries the rank's latest word besides its steps: ``{"stepsDone",
  "stepsTotal", "gpus", "gpuUtil", "gpuMemUsed", "gpuMemTotal"}``, each optional, integers (the
  utilisation a number in 0..100), non-negative and bounded (figures.snapshot.info). An
  optional ``"stream"`` and ``"first"`` (both or neither) number the records: ``stream`` names the
  shipper process (STREAM: a few letters and digits, new each time a shipper starts) and
  ``first`` is the number of the batch's first record in that stream, the next ones following
  on. A POST whose answer was lost is sent again, with the records added since: by the numbers
  the collector skips those it already holds, so a timed-out POST never counts steps twice.
- ``POST /v1/jobs/<namespace>/<name>/recoveries`` (a job's write token) with one in-place restart
  as the launcher tells it (launch/recovery.py): ``{"worker", "rank", "exitCode", "reason",
  "recovered": "InPlace", "seconds", "round", "failedAt", "restart"}``, each checked
  (`recovery`, by figures.snapshot.recovery_fields, which the operator's read uses again), the
  body at most MAX_RECOVERY_BYTES. The collector keeps the latest of them.
- ``POST /v1/jobs/<namespace>/<name>/world`` (a job's write token) with one rendezvous round's
  world as an elastic job's launcher tells it: ``{"round", "nodes", "worldSize", "restart"}``,
  checked (`world`, by figures.snapshot.world_fields), the body at most MAX_RECOVERY_BYTES. The
  collector keeps the newest round's (the largest (restart, round)): status.worldSize.
- ``GET /v1/jobs/<namespace>/<name>/<uid>`` (the reader token): the collector's snapshot as JSON,
  with ``"ingest"``: seconds since the gateway last stored the job's records (``okAgo``), since a
  store last failed (``failedAgo``), each when there was one, and since the gateway began to
  count (``upAgo``) (gateway/health.py).
- ``DELETE /v1/jobs/<namespace>/<name>/<uid>`` (the reader token): forget the job's collector.

The operator checks what comes back again (figures.snapshot), against the job's own spec.
The shipper imports this module inside training images, so the checks' own imports
(figures.snapshot, which brings pydantic) are made where they run, in the gateway.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence, TypeVar

from ..contract import MAX_WORKERS, RECOVERIES_PATH as RECOVERIES_TEMPLATE, WORLD_PATH as WORLD_TEMPLATE
from . import record
from .record import Step

T = TypeVar("T")

#: Largest request body accepted (a shipper sends at most MAX_BATCH records, ~70 bytes each).
MAX_BODY_BYTES = 1 << 20
#: Most records in one request.
MAX_BATCH = 5000
#: Largest snapshot the operator reads back: above what a collector keeps at most (its per-job
#: caps, gateway/collector.py: ~20 MB with every number at its widest).
MAX_SNAPSHOT_BYTES = 32 << 20

#: A shipper's stream name.
STREAM = re.compile(r"^[A-Za-z0-9]{1,32}$")

_NAME = r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?"
RECORDS_PATH = re.compile(rf"^/v1/jobs/(?P<namespace>{_NAME})/(?P<name>{_NAME})/records$")
RECOVERIES_PATH = re.compile(
    "^" + RECOVERIES_TEMPLATE.format(namespace=f"(?P<namespace>{_NAME})", name=f"(?P<name>{_NAME})") + "$")
WORLD_PATH = re.compile(
    "^" + WORLD_TEMPLATE.format(namespace=f"(?P<namespace>{_NAME})", name=f"(?P<name>{_NAME})") + "$")
#: Largest body of a recovery or world POST (one record is ~200 bytes).
MAX_RECOVERY_BYTES = 2048
JOB_PATH = re.compile(rf"^/v1/jobs/(?P<namespace>{_NAME})/(?P<name>{_NAME})/(?P<uid>[A-Za-z0-9-]{{1,64}})$")


class Refused(ValueError):
    """A request the gateway turns down, with the HTTP status to answer and why."""

    def __init__(self, status: int, why: str):
        super().__init__(why)
        self.status = status


@dataclass(frozen=True)
class Batch:
    """One checked POST: a rank's new records."""

    worker: int
    rank: int
    #: The steps, checked and encoded again (figures/record.py): what the collector stores.
    records: list[list[Optional[float]]]
    #: The rank's info as sent (checked), or None when the POST carried none.
    info: Optional[dict[str, Any]] = None
    #: The shipper's stream and the number of the first record in it; None: not numbered.
    stream: Optional[str] = None
    first: Optional[int] = None


def records_path(namespace: str, name: str) -> str:
    return f"/v1/jobs/{namespace}/{name}/records"


def recoveries_path(namespace: str, name: str) -> str:
    return RECOVERIES_TEMPLATE.format(namespace=namespace, name=name)


def world_path(namespace: str, name: str) -> str:
    return WORLD_TEMPLATE.format(namespace=namespace, name=name)


def job_path(namespace: str, name: str, uid: str) -> str:
    return f"/v1/jobs/{namespace}/{name}/{uid}"


def bearer(header: Optional[str]) -> Optional[str]:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    scheme, _, token = (header or "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token and len(token) <= 200 and token.isascii() else None


def _index(value: Any, limit: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < limit:
        raise Refused(400, f"{what} must be an integer in 0..{limit - 1}")
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")  # NaN, Infinity: Python's json accepts them, we do not


def batch(body: bytes) -> Batch:
    """The checked body of a records POST; raises Refused (400 or 413) with the reason."""
    from .snapshot import MAX_COUNT, MAX_RANKS, info

    if len(body) > MAX_BODY_BYTES:
        raise Refused(413, f"the body is over {MAX_BODY_BYTES} bytes")
    try:
        document = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as error:
        raise Refused(400, f"the body is not JSON ({error})"[:200]) from None
    if not isinstance(document, dict) or not {"worker", "rank", "records"} <= set(document) <= {
            "worker", "rank", "records", "info", "stream", "first"}:
        raise Refused(400, "the body must be {\"worker\", \"rank\", \"records\"} and, optionally, \"info\", "
                           "\"stream\" and \"first\"")
    worker = _index(document["worker"], MAX_WORKERS, "worker")
    rank = _index(document["rank"], MAX_RANKS, "rank")
    records = document["records"]
    if not isinstance(records, list) or len(records) > MAX_BATCH:
        raise Refused(400, f"records must be a list of at most {MAX_BATCH}")
    checked = []
    for position, raw in enumerate(records):
        try:
            checked.append(record.encode(record.decode(raw)))
        except ValueError as error:
            raise Refused(400, f"record {position}: {error}") from None
    said = document.get("info")
    if said is not None:
        try:
            info(said)
        except ValueError as error:
            raise Refused(400, str(error)[:200]) from None
    stream, first = document.get("stream"), document.get("first")
    if (stream is None) != (first is None):
        raise Refused(400, "stream and first come together")
    if stream is not None and (not isinstance(stream, str) or not STREAM.match(stream)):
        raise Refused(400, "stream must be 1 to 32 letters and digits")
    if first is not None:
        first = _index(first, MAX_COUNT + 1, "first")
    return Batch(worker, rank, checked, said, stream, first)


def _small_record(body: bytes, check: Callable[[Any], T]) -> T:
    """A recovery's or a world's body, at most MAX_RECOVERY_BYTES, parsed and given to `check`
    (figures.snapshot's, which the operator's read uses again); raises Refused (400 or 413)."""
    if len(body) > MAX_RECOVERY_BYTES:
        raise Refused(413, f"the body is over {MAX_RECOVERY_BYTES} bytes")
    try:
        return check(json.loads(body, parse_constant=_reject_constant))
    except (ValueError, RecursionError) as error:
        raise Refused(400, str(error)[:200]) from None


def recovery(body: bytes) -> dict[str, Any]:
    """The checked body of a recovery POST; raises Refused (400 or 413) with the reason."""
    from .snapshot import recovery_fields

    return _small_record(body, recovery_fields)


def world(body: bytes) -> dict[str, int]:
    """The checked body of a world POST; raises Refused (400 or 413) with the reason."""
    from .snapshot import world_fields

    return _small_record(body, world_fields)


def encode(worker: int, rank: int, steps: Sequence[Step], info: Optional[dict[str, Any]] = None,
           sequence: Optional[tuple[str, int]] = None) -> bytes:
    """The body the shipper posts; `sequence`: its stream and the number of the first step in it."""
    body: dict[str, Any] = {"worker": worker, "rank": rank, "records": [record.encode(s) for s in steps]}
    if info:
        body["info"] = info
    if sequence is not None:
        body["stream"], body["first"] = sequence
    return json.dumps(body, separators=(",", ":"), allow_nan=False).encode()


def snapshot(body: bytes) -> Any:
    """A GET's body as JSON (the operator checks its content with figures.snapshot.check)."""
    if len(body) > MAX_SNAPSHOT_BYTES:
        raise ValueError(f"the snapshot is over {MAX_SNAPSHOT_BYTES} bytes")
    return json.loads(body, parse_constant=_reject_constant)
