"""Per-job rate limits at the figures gateway: a token bucket per job, pure (the clock is given).

A job's own code holds its write token and may POST as fast as it likes; every POST costs the
gateway a body check and a Ray call from the pool of threads all jobs share, so one job's flood
delayed every other job's figures. Past its bucket a job's POST is answered 429 with Retry-After
from its head alone (no body read, no thread), and an honest shipper backs off and keeps its
records as it does on a 503.

The rate is generous for any honest job: a shipper posts once per second (metrics/shipper.py,
SHIP_EVERY), and a job has at most JOB_RANKS (16,384) ranks, so 16,384 POSTs a second per job
is what the largest job sends at most in steady state; the burst of two seconds' worth covers
ranks whose seconds line up. After an outage a rank sends its backlog in chunks back to back:
those past the bucket wait their turn (the shipper retries), and still arrive at 16,384 x 2000
records a second, far above any training's steps.
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass
from typing import Hashable

from .collector import JOB_RANKS

#: POSTs per second a job may make: one per second from each of its at most JOB_RANKS ranks.
POSTS_PER_SECOND = float(JOB_RANKS)
#: POSTs a job may make at once (a full bucket): two seconds' worth.
BURST = 2 * POSTS_PER_SECOND
#: Jobs whose buckets are remembered: past it, the least recently seen job's is forgotten (it
#: starts again with a full bucket, as it would after a second of quiet anyway).
JOBS_TRACKED = 10_000


@dataclass
class Bucket:
    tokens: float
    at: float


class JobBuckets:
    """One token bucket per job: `take` spends one token of the job's bucket, refilled at `rate`
    a second up to `burst`. Memory: at most `jobs` buckets."""

    def __init__(self, rate: float = POSTS_PER_SECOND, burst: float = BURST, jobs: int = JOBS_TRACKED):
        if rate <= 0 or burst < 1:
            raise ValueError("a bucket needs a positive rate and room for one POST")
        self.rate = rate
        self.burst = burst
        self.jobs = jobs
        self.buckets: collections.OrderedDict[Hashable, Bucket] = collections.OrderedDict()

    def take(self, job: Hashable, now: float) -> float:
        """0 when the job may POST now (a token spent); otherwise the seconds, at least 1 and a
        whole number (an HTTP Retry-After), until its bucket holds a token again."""
        bucket = self.buckets.pop(job, None)
        if bucket is None:
            bucket = Bucket(self.burst, now)
        bucket.tokens = min(self.burst, bucket.tokens + max(0.0, now - bucket.at) * self.rate)
        bucket.at = now
        self.buckets[job] = bucket  # last: the most recently seen
        while len(self.buckets) > self.jobs:
            self.buckets.popitem(last=False)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return float(max(1, math.ceil((1 - bucket.tokens) / self.rate)))
