"""The operator's time budget, in one place: how long the Lease lasts, how long renewal may take,
how long any API call may take, and how long the work queue may sit still.

The numbers depend on each other. A leader that cannot renew must stop acting before another
replica may take the Lease (LEASE_SECONDS after its last renewal), so renewal gives up at
RENEW_DEADLINE_SECONDS, and no single API call may outlast that deadline: a call without a
timeout against a paused or unreachable apiserver would hang the renewal past the lease's
expiry, and two replicas would act at once. `check()` states these relations and a unit test
runs it, so changing one number cannot silently break another.

The values are client-go's leader-election defaults scaled down (15 s / 10 s / 2 s).
"""

from __future__ import annotations

#: How long a Lease holds without renewal; a follower takes over after this.
LEASE_SECONDS = 15
#: A leader that has not renewed for this long steps down (its process exits).
RENEW_DEADLINE_SECONDS = 10
#: Pause between two renewals, and between two tries of a follower.
RETRY_SECONDS = 2
#: The longest any one Kubernetes API call may take (connect and response together); a renewal
#: call gets what is left of the renew deadline if that is less.
API_TIMEOUT_SECONDS = 5.0
#: The watch streams (informer.py): the apiserver ends each after SERVER_TIMEOUT,
#: the client gives up on one after CLIENT_TIMEOUT (a stream is long by design: these bound a
#: dead stream, not a request).
WATCH_SERVER_TIMEOUT_SECONDS = 300
WATCH_CLIENT_TIMEOUT_SECONDS = 330
#: /healthz turns red when keys have waited this long in the work queue while no reconcile
#: finished: a wedged queue. A pass makes at most a handful of API calls, each bounded above,
#: so a live operator finishes one well inside it even when the apiserver is down.
QUEUE_STALL_SECONDS = 120.0
#: /healthz turns red when the event loop has not beaten for this long.
EVENT_LOOP_STALE_SECONDS = 60.0
#: How often the event loop proves it runs (and reports the queue's progress to /healthz).
HEARTBEAT_SECONDS = 5.0
#: How long a failing image pull may be retried before the job fails (policy/unstartable.py):
#: the kubelet's back-off (10 s, doubling) pulls about four times in that while. The default of
#: `tandem operator run --image-pull-grace-seconds` (the chart's operator.imagePullGraceSeconds);
#: a test cluster that only ever meets missing images sets it short.
IMAGE_PULL_GRACE_SECONDS = 90


def check() -> None:
    """Raise AssertionError if the numbers no longer fit together."""
    assert API_TIMEOUT_SECONDS < RENEW_DEADLINE_SECONDS, "one API call must not outlast the renew deadline"
    assert RETRY_SECONDS < RENEW_DEADLINE_SECONDS, "renewal must be tried more than once before the deadline"
    # Renewal gives up RENEW_DEADLINE after the start of its last good try (the renewTime it wrote);
    # a call already in flight then ends within API_TIMEOUT: all before a follower may take over.
    assert RENEW_DEADLINE_SECONDS + API_TIMEOUT_SECONDS <= LEASE_SECONDS, \
        "a leader must have stopped acting before its lease can be taken"
    assert HEARTBEAT_SECONDS < EVENT_LOOP_STALE_SECONDS
    assert 4 * API_TIMEOUT_SECONDS < QUEUE_STALL_SECONDS, "a pass of a few bounded calls must fit the stall bound"
