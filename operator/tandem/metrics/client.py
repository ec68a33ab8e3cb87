"""Reading a job's figures from its Ray collector: for the operator and the local CLI.

`read_summary` never hangs and never raises for an unreachable Ray: it probes the address
(TCP, bounded), connects this process to Ray in a background thread (bounded; a connection
that does not come up in time is left to finish in the background and the call says
"unavailable"), and reads the actor with a timeout. One process talks to one Ray address at a
time; asking for another address disconnects from the first.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timezone
from typing import Any, Optional

from ..api.status import MetricsStatus
from ..errors import NotFound, Unreachable
from . import summary
from .shipper import reachable
from .snapshot import check

CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 5.0

_lock = threading.Lock()
_state: dict[str, Any] = {"address": None, "connecting": None}


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _connected_to(address: str, timeout: float) -> Optional[str]:
    """Make sure this process is a Ray driver of `address`; None when it is, else why not."""
    import ray

    from .collector import RAY_NAMESPACE

    with _lock:
        if _state["address"] == address and ray.is_initialized():
            return None
        pending = _state["connecting"]
        if pending is not None and pending.is_alive():
            return "still connecting"
        if ray.is_initialized():
            ray.shutdown()
            _state["address"] = None
        outcome: list[Optional[str]] = []

        def connect() -> None:
            try:
                ray.init(address=address, namespace=RAY_NAMESPACE, logging_level=logging.ERROR,
                         log_to_driver=False, configure_logging=False)
                _state["address"] = address
                outcome.append(None)
            except Exception as error:  # noqa: BLE001
                outcome.append(f"{type(error).__name__}: {error}"[:300])

        thread = threading.Thread(target=connect, name="tandem-metrics-connect", daemon=True)
        _state["connecting"] = thread
        thread.start()
    thread.join(timeout)
    return outcome[0] if outcome else f"no connection to Ray within {timeout:.0f} s"


def read_snapshot(address: str, namespace: str, job: str, timeout: float = READ_TIMEOUT) -> dict[str, Any]:
    """The collector's raw records; raises Unreachable (or NotFound: no collector yet) with the reason."""
    started = time.monotonic()
    if not reachable(address, timeout=min(1.0, timeout)):
        raise Unreachable(f"Ray at {address} is unreachable")
    why = _connected_to(address, max(1.0, min(CONNECT_TIMEOUT, timeout * 2)))
    if why is not None:
        raise Unreachable(why)
    import ray

    from .collector import lookup

    try:
        actor = lookup(namespace, job)
    except ValueError:
        raise NotFound(f"no metrics collector for {namespace}/{job} yet") from None
    left = max(0.5, timeout - (time.monotonic() - started))
    try:
        snapshot: dict[str, Any] = ray.get(actor.snapshot.remote(), timeout=left)
        return snapshot
    except Exception as error:  # noqa: BLE001
        raise Unreachable(f"metrics collector did not answer ({type(error).__name__})") from None


def from_snapshot(
    snapshot: Any, workers: int, baseline: Optional[float], straggler_threshold: float,
    window_s: float = summary.WINDOW_SECONDS,
) -> MetricsStatus:
    """The figures of a collector snapshot; malformed parts are dropped and named in `reason`."""
    checked = check(snapshot, workers)
    return summary.summarize(checked.records, workers, baseline, straggler_threshold, window_s=window_s,
                             updated_at=now_rfc3339(), steps_total=checked.totals, reason=checked.reason())


def read_summary(
    address: str,
    namespace: str,
    job: str,
    workers: int,
    baseline: Optional[float],
    straggler_threshold: float,
    timeout: float = READ_TIMEOUT,
) -> MetricsStatus:
    """The job's figures, or MetricsStatus(available=False) when Ray or its collector cannot be read."""
    if not address:
        return summary.unavailable("no metrics address", now_rfc3339())
    try:
        snapshot = read_snapshot(address, namespace, job, timeout)
    except Exception as error:  # noqa: BLE001 - any failure means "unavailable", never an exception
        return summary.unavailable(str(error), now_rfc3339())
    return from_snapshot(snapshot, workers, baseline, straggler_threshold)


def delete(address: str, namespace: str, job: str, timeout: float = READ_TIMEOUT) -> bool:
    """Remove the job's collector (the operator calls this when a TrainingJob is deleted)."""
    try:
        if not reachable(address, timeout=min(1.0, timeout)) or _connected_to(address, timeout) is not None:
            return False
        import ray

        from .collector import lookup

        ray.kill(lookup(namespace, job))
        return True
    except Exception:  # noqa: BLE001
        return False
