"""Reading a job's figures from the figures gateway: for the operator. No Ray here.

The operator's one way to the figures is an HTTP GET with the reader token (figures/token.py):
bounded in time (`READ_TIMEOUT`) and size (`wire.MAX_SNAPSHOT_BYTES`), parsed as JSON only, then
checked record by record against the job's spec (figures/snapshot.py) before the maths. The
operator never unpickles anything and never imports Ray, so whoever controls the Ray head can at
worst send wrong numbers, which the checks bound.

`read` never hangs and never raises: any failure reads as MetricsStatus(available=False), with
the reason, and no recovery records.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple, Optional

from ..api.status import MetricsStatus, Told, rfc3339
from ..errors import NotFound, Unreachable
from . import summary, wire
from .snapshot import check

READ_TIMEOUT = 5.0


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _request(method: str, url: str, reader: str, timeout: float) -> bytes:
    """The body of a gateway answer; raises NotFound on 404 and Unreachable on anything else that is
    not a 2xx. At most MAX_SNAPSHOT_BYTES + 1 bytes are read, and none when the answer declares
    more: whatever the gateway (or whoever stands in its place) sends, a read costs the operator
    a bounded amount of memory."""
    request = urllib.request.Request(url, method=method, headers={"Authorization": f"Bearer {reader}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            declared = answer.headers.get("Content-Length", "")
            if declared.strip().isdigit() and int(declared) > wire.MAX_SNAPSHOT_BYTES:
                raise Unreachable(f"the figures gateway's answer is over {wire.MAX_SNAPSHOT_BYTES} bytes ({declared})")
            body: bytes = answer.read(wire.MAX_SNAPSHOT_BYTES + 1)
            return body
    except urllib.error.HTTPError as error:
        if error.code == 404:
            raise NotFound(f"no figures at the gateway yet ({error.code})") from None
        raise Unreachable(f"the figures gateway answered {error.code} {error.reason}"[:300]) from None
    except (OSError, ValueError) as error:  # URLError, timeouts, refused connections, bad URLs
        raise Unreachable(f"the figures gateway at {url.split('/v1/')[0]} is unreachable ({error})"[:300]) from None


def read_snapshot(base_url: str, reader: str, namespace: str, job: str, uid: str,
                  timeout: float = READ_TIMEOUT) -> Any:
    """The collector's raw records as JSON (unchecked); raises Unreachable or NotFound with the reason."""
    body = _request("GET", base_url.rstrip("/") + wire.job_path(namespace, job, uid), reader, timeout)
    try:
        return wire.snapshot(body)
    except (ValueError, RecursionError) as error:
        raise Unreachable(f"the figures gateway sent no usable JSON ({error})"[:300]) from None


class Reading(NamedTuple):
    """What one read of the gateway gives the operator: the figures, the launchers' in-place
    restart records (checked; api/recoveries.py counts them), and an elastic job's world size."""

    metrics: MetricsStatus
    recoveries: list[Told]
    #: The world size of the newest rendezvous round the launchers told (status.worldSize), or None.
    world_size: Optional[int] = None


def from_snapshot(
    snapshot: Any, workers: int, baseline: Optional[float], straggler_threshold: float,
    window_s: float = summary.WINDOW_SECONDS,
) -> MetricsStatus:
    """The figures of a collector snapshot; malformed parts are dropped and named in `reason`."""
    return reading(snapshot, workers, baseline, straggler_threshold, window_s).metrics


def reading(
    snapshot: Any, workers: int, baseline: Optional[float], straggler_threshold: float,
    window_s: float = summary.WINDOW_SECONDS,
) -> Reading:
    """The figures, the in-place restart records and the world size of a collector snapshot, checked."""
    checked = check(snapshot, workers)
    now = datetime.now(timezone.utc)
    metrics = summary.summarize(checked.records, workers, baseline, straggler_threshold, window_s=window_s,
                                updated_at=now_rfc3339(), steps_total=checked.totals, reason=checked.reason(),
                                info=checked.info)
    return Reading(metrics.model_copy(update=intake_moments(checked.ingest, now)), checked.recoveries,
                   checked.world_size)


def intake_moments(ages: dict[str, float], now: datetime) -> dict[str, str]:
    """MetricsStatus's ingested_at and ingest_interrupted_at from the gateway's ages (seconds before
    this read: snapshot.INGEST_AGES), on the reader's clock. Interrupted: the later of the last
    failed store and the gateway's start, before which a store may have failed unseen."""
    def moment(age: float) -> str:
        return rfc3339(now - timedelta(seconds=age))

    moments = {}
    if "okAgo" in ages:
        moments["ingested_at"] = moment(ages["okAgo"])
    interrupted = [ages[name] for name in ("failedAgo", "upAgo") if name in ages]
    if interrupted:
        moments["ingest_interrupted_at"] = moment(min(interrupted))
    return moments


def read(
    base_url: str,
    reader: str,
    namespace: str,
    job: str,
    uid: str,
    workers: int,
    baseline: Optional[float],
    straggler_threshold: float,
    timeout: float = READ_TIMEOUT,
) -> Reading:
    """The job's figures and in-place restart records; figures unavailable (and no records) when the
    gateway cannot be read."""
    if not base_url:
        return Reading(summary.unavailable("no metrics address", now_rfc3339()), [])
    try:
        snapshot = read_snapshot(base_url, reader, namespace, job, uid, timeout)
    except Exception as error:  # noqa: BLE001 - any failure means "unavailable", never an exception
        return Reading(summary.unavailable(str(error), now_rfc3339()), [])
    return reading(snapshot, workers, baseline, straggler_threshold)


def delete(base_url: str, reader: str, namespace: str, job: str, uid: str, timeout: float = READ_TIMEOUT) -> bool:
    """Remove the job's collector (the operator calls this when a TrainingJob is deleted)."""
    try:
        _request("DELETE", base_url.rstrip("/") + wire.job_path(namespace, job, uid), reader, timeout)
        return True
    except (NotFound, Unreachable):
        return False


