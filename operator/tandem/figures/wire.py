"""What goes over the figures gateway's HTTP interface, checked: pure, no I/O.

The gateway checks every request *before* anything reaches Ray, so the collector only ever
holds bounded, well-formed records, whoever posted them:

- ``POST /v1/jobs/<namespace>/<name>/records`` (a job's write token) with the body
  ``{"worker": i, "rank": r, "records": [<step>, ...]}``: ``worker`` below MAX_WORKERS, ``rank``
  below MAX_RANKS, at most MAX_BATCH records, each a step as figures/record.py encodes it (every
  number finite and non-negative), the body at most MAX_BODY_BYTES of JSON. An
  optional ``"info"`` carries the rank's latest word besides its steps: ``{"stepsDone",
  "stepsTotal", "gpus", "gpuUtil", "gpuMemUsed", "gpuMemTotal"}``, each optional, integers (the
  utilisation a number in 0..100), non-negative and bounded (figures.snapshot.info).
- ``POST /v1/jobs/<namespace>/<name>/recoveries`` (a job's write token) with one in-place restart
  as the launcher tells it (launch/recovery.py): ``{"worker", "rank", "exitCode", "reason",
  "recovered": "InPlace", "seconds", "round", "failedAt", "restart"}``, each checked
  (`recovery`, by figures.snapshot.recovery_fields, which the operator's read uses again), the
  body at most MAX_RECOVERY_BYTES. The collector keeps the latest of them.
- ``GET /v1/jobs/<namespace>/<name>/<uid>`` (the reader token): the collector's snapshot as JSON.
- ``DELETE /v1/jobs/<namespace>/<name>/<uid>`` (the reader token): forget the job's collector.

The operator checks what comes back again (figures.snapshot), against the job's own spec.
The shipper imports this module inside training images, so the checks' own imports
(figures.snapshot, which brings pydantic) are made where they run, in the gateway.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from ..contract import MAX_WORKERS, RECOVERIES_PATH as RECOVERIES_TEMPLATE
from . import record
from .record import Step

#: Largest request body accepted (a shipper sends at most MAX_BATCH records, ~70 bytes each).
MAX_BODY_BYTES = 1 << 20
#: Most records in one request.
MAX_BATCH = 5000
#: Largest snapshot the operator reads back: above what a collector keeps at most (its per-job
#: caps, gateway/collector.py: ~20 MB with every number at its widest).
MAX_SNAPSHOT_BYTES = 32 << 20

_NAME = r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?"
RECORDS_PATH = re.compile(rf"^/v1/jobs/(?P<namespace>{_NAME})/(?P<name>{_NAME})/records$")
RECOVERIES_PATH = re.compile(
    "^" + RECOVERIES_TEMPLATE.format(namespace=f"(?P<namespace>{_NAME})", name=f"(?P<name>{_NAME})") + "$")
#: Largest body of a recovery POST (one record is ~200 bytes).
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


def records_path(namespace: str, name: str) -> str:
    return f"/v1/jobs/{namespace}/{name}/records"


def recoveries_path(namespace: str, name: str) -> str:
    return RECOVERIES_TEMPLATE.format(namespace=namespace, name=name)


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
    from .snapshot import MAX_RANKS, info

    if len(body) > MAX_BODY_BYTES:
        raise Refused(413, f"the body is over {MAX_BODY_BYTES} bytes")
    try:
        document = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as error:
        raise Refused(400, f"the body is not JSON ({error})"[:200]) from None
    if not isinstance(document, dict) or not {"worker", "rank", "records"} <= set(document) <= {
            "worker", "rank", "records", "info"}:
        raise Refused(400, "the body must be {\"worker\", \"rank\", \"records\"} and, optionally, \"info\"")
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
    return Batch(worker, rank, checked, said)


def recovery(body: bytes) -> dict[str, Any]:
    """The checked body of a recovery POST; raises Refused (400 or 413) with the reason."""
    from .snapshot import recovery_fields

    if len(body) > MAX_RECOVERY_BYTES:
        raise Refused(413, f"the body is over {MAX_RECOVERY_BYTES} bytes")
    try:
        return recovery_fields(json.loads(body, parse_constant=_reject_constant))
    except (ValueError, RecursionError) as error:
        raise Refused(400, str(error)[:200]) from None


def encode(worker: int, rank: int, steps: Sequence[Step], info: Optional[dict[str, Any]] = None) -> bytes:
    """The body the shipper posts."""
    body: dict[str, Any] = {"worker": worker, "rank": rank, "records": [record.encode(s) for s in steps]}
    if info:
        body["info"] = info
    return json.dumps(body, separators=(",", ":"), allow_nan=False).encode()


def snapshot(body: bytes) -> Any:
    """A GET's body as JSON (the operator checks its content with figures.snapshot.check)."""
    if len(body) > MAX_SNAPSHOT_BYTES:
        raise ValueError(f"the snapshot is over {MAX_SNAPSHOT_BYTES} bytes")
    return json.loads(body, parse_constant=_reject_constant)
