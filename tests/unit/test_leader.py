"""A follower's view of the Lease: expiry by the time it observed the holder's renewals, on its
own monotonic clock, never by comparing the leader's written renewTime with its own clock."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from tandem.controller.leader import MICRO_TIME_FORMAT, LeaseObserver

DURATION = 15
#: The leader's clock, a minute behind the follower's: its renewTime looks long past.
LEADER_CLOCK = datetime(2026, 12, 6, 6, 0, 0, tzinfo=timezone.utc)


def stamp(moment: datetime) -> str:
    return moment.strftime(MICRO_TIME_FORMAT)


def written(renewals: int, holder: str = "leader") -> dict[str, Any]:
    """The spec of the Lease as the leader wrote it, as the API server returns it."""
    return {"holderIdentity": holder, "leaseDurationSeconds": DURATION,
            "renewTime": stamp(LEADER_CLOCK + timedelta(seconds=2 * renewals)),
            "acquireTime": stamp(LEADER_CLOCK), "leaseTransitions": 1}


def test_a_renewing_leader_whose_clock_is_behind_keeps_the_lease():
    """Its renewTime is always a minute old by the follower's clock: a zero-margin wall-clock
    comparison called it expired at once, and two replicas led."""
    observer = LeaseObserver()
    for renewal, follower_now in enumerate(range(1000, 1100, 2)):
        assert not observer.expired(written(renewal), float(follower_now)), renewal


def test_a_silent_leader_expires_a_lease_duration_after_the_follower_last_saw_a_renewal():
    observer = LeaseObserver()
    assert not observer.expired(written(0), 500.0)  # first seen: counts as just renewed
    assert not observer.expired(written(0), 500.0 + DURATION - 0.01)
    assert not observer.expired(written(1), 500.0 + DURATION - 0.01)  # renewed: the clock starts again
    assert not observer.expired(written(1), 500.0 + 2 * DURATION - 0.02)
    assert observer.expired(written(1), 500.0 + 2 * DURATION)


def test_a_lease_without_holder_or_renewal_is_free():
    observer = LeaseObserver()
    assert observer.expired(None, 1.0)
    assert observer.expired({"renewTime": stamp(LEADER_CLOCK)}, 1.0)
    assert observer.expired({"holderIdentity": "leader", "renewTime": None}, 1.0)
