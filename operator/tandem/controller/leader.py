"""Leader election on a coordination.k8s.io Lease, as client-go's leaderelection does it.

Only the holder of the Lease reconciles. A replica that cannot renew before the lease would
expire stops (its process exits and the Deployment restarts it as a follower), so two replicas
never act at once. That needs every renewal call to end: each gets what is left of the renew
deadline as its timeout (client-go does the same with a context deadline), so a paused or
unreachable apiserver makes the renewal fail in time instead of hanging past the lease's expiry.
The numbers live in timing.py.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Optional

from .apiclient import ApiError, ApiUnreachable, SyncApi, resource_path
from .timing import API_TIMEOUT_SECONDS, LEASE_SECONDS, RENEW_DEADLINE_SECONDS, RETRY_SECONDS

log = logging.getLogger("tandem.operator.leader")
#: A Lease's renewTime and acquireTime are metav1.MicroTime: RFC 3339 with microseconds, in UTC.
MICRO_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
#: The shortest timeout a call gets near the deadline (urllib3 reads 0 as "no timeout").
_MIN_CALL_SECONDS = 0.05


def identity() -> str:
    return f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


@dataclass
class LeaseObserver:
    """When this replica last saw the holder's record change, by its own monotonic clock.

    The renewTime a leader writes is the leader's clock: compared with a follower's, a skew of
    a few seconds (or a follower whose clock runs ahead) lets the follower take a lease the
    leader still holds. As client-go does, the follower trusts only what it observed: a lease
    is expired when the record has not changed for leaseDurationSeconds of the follower's own
    time. A record first seen counts as just renewed."""

    record: Optional[tuple[Any, ...]] = None
    observed_at: float = 0.0

    def expired(self, spec: Optional[dict[str, Any]], now: float) -> bool:
        """`now`: time.monotonic(). A lease without a holder or a renewal is free."""
        if not spec or not spec.get("holderIdentity") or not spec.get("renewTime"):
            return True
        record = tuple(spec.get(field) for field in ("holderIdentity", "renewTime", "acquireTime", "leaseTransitions",
                                                     "leaseDurationSeconds"))
        if record != self.record:
            self.record, self.observed_at = record, now
            return False
        return now >= self.observed_at + (spec.get("leaseDurationSeconds") or LEASE_SECONDS)


class LeaderElector:
    def __init__(self, api: SyncApi, namespace: str, name: str = "tandem-operator",
                 me: Optional[str] = None):
        self.api = api
        self.namespace, self.name = namespace, name
        self.leases = resource_path("coordination.k8s.io/v1", "leases", namespace)
        self.path = f"{self.leases}/{name}"
        self.me = me or identity()
        self.observer = LeaseObserver()

    def _timeout(self, deadline: Optional[float]) -> float:
        """A call's timeout: API_TIMEOUT_SECONDS, or what is left before `deadline` (monotonic)."""
        if deadline is None:
            return API_TIMEOUT_SECONDS
        return max(_MIN_CALL_SECONDS, min(API_TIMEOUT_SECONDS, deadline - time.monotonic()))

    def try_acquire_or_renew(self, deadline: Optional[float] = None) -> bool:
        """One try; every call it makes ends by `deadline` (time.monotonic()) if one is given."""
        now = datetime.now(timezone.utc).strftime(MICRO_TIME_FORMAT)
        spec: dict[str, Any] = {"holderIdentity": self.me, "leaseDurationSeconds": LEASE_SECONDS,
                                "renewTime": now, "acquireTime": now}
        try:
            lease = self.api.call("GET", self.path, timeout=self._timeout(deadline))
        except ApiError as error:
            if error.status != 404:
                raise
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace}, "spec": spec}
            try:
                self.api.call("POST", self.leases, body=body, timeout=self._timeout(deadline))
                return True
            except ApiError as create_error:
                if create_error.status == 409:
                    return False
                raise
        current = lease.get("spec") or {}  # a Lease without a spec is free to take
        holder = current.get("holderIdentity")
        if holder != self.me and not self.observer.expired(current, time.monotonic()):
            return False
        if holder == self.me and current.get("acquireTime"):
            spec["acquireTime"] = current["acquireTime"]
        spec["leaseTransitions"] = (current.get("leaseTransitions") or 0) + (0 if holder == self.me else 1)
        lease["spec"] = spec
        try:
            # resourceVersion in the body makes this a compare-and-swap: one writer wins.
            self.api.call("PUT", self.path, body=lease, timeout=self._timeout(deadline))
            return True
        except ApiError as error:
            if error.status == 409:
                return False
            raise

    def acquire(self, stop: threading.Event) -> bool:
        """Block until this replica leads (True) or `stop` is set (False)."""
        announced = False
        while not stop.is_set():
            try:
                if self.try_acquire_or_renew():
                    log.info("leading as %s (lease %s/%s)", self.me, self.namespace, self.name)
                    return True
            except ApiError as error:
                log.warning("lease %s/%s: %s", self.namespace, self.name, error.reason)
            except ApiUnreachable as error:  # unreachable or timed out: a follower just tries again
                log.warning("lease %s/%s: %s", self.namespace, self.name, error)
            if not announced:
                log.info("another replica leads; waiting as %s", self.me)
                announced = True
            stop.wait(RETRY_SECONDS)
        return False

    def keep_renewing(self, stop: threading.Event, lost: Callable[[], None]) -> threading.Thread:
        """Renew in the background; call `lost` once renewal has failed until the renew deadline.

        The deadline counts from the start of the last good try, the moment whose time that try
        wrote as renewTime: stepping down at it leaves the rest of the lease for calls in flight."""

        def loop() -> None:
            deadline = time.monotonic() + RENEW_DEADLINE_SECONDS
            while not stop.wait(max(0.0, min(RETRY_SECONDS, deadline - time.monotonic()))):
                started = time.monotonic()
                if started < deadline:
                    try:
                        if self.try_acquire_or_renew(deadline):
                            deadline = started + RENEW_DEADLINE_SECONDS
                            continue
                    except Exception as error:  # noqa: BLE001 - network blips are retried until the deadline
                        log.warning("renewing lease: %s", error)
                if time.monotonic() >= deadline:
                    log.error("lost the lease %s/%s: not renewed within %s s; stopping",
                              self.namespace, self.name, RENEW_DEADLINE_SECONDS)
                    lost()
                    return

        thread = threading.Thread(target=loop, name="lease-renewal", daemon=True)
        thread.start()
        return thread

    def release(self) -> None:
        """Give the lease up on a clean stop so a follower takes over at once."""
        try:
            lease = self.api.call("GET", self.path)
            spec = lease.get("spec") or {}
            if spec.get("holderIdentity") == self.me:
                spec["holderIdentity"] = None
                spec["renewTime"] = None
                self.api.call("PUT", self.path, body=lease)
        except Exception:  # noqa: BLE001 - best effort: the lease expires anyway
            pass
