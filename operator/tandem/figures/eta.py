"""Progress and ETA, pure: steps done, steps in all and the recent step rate in; percent and
seconds left out. No clocks, no I/O.

The rate is the one measured over the metrics window (summary.WINDOW_SECONDS, the recent
steps), never the average since the start: a run whose first minutes went to compiling or to a
slow data cache would otherwise promise too much or too little. The ETA is absent rather than
wrong: without a total, with fewer than `MIN_STEPS` steps in the window, or with no rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

#: Fewer steps than this in the window give no rate to trust.
MIN_STEPS = 5
#: Longest ETA shown (a year): beyond it the figure says nothing.
MAX_ETA_SECONDS = 365 * 24 * 3600


@dataclass(frozen=True)
class Estimate:
    percent: Optional[float]
    eta: Optional[int]


def rate(steps: int, seconds: float) -> Optional[float]:
    """Steps per second of `steps` steps over `seconds`, or None when they are too few to trust."""
    if steps < MIN_STEPS or not math.isfinite(seconds) or seconds <= 0:
        return None
    return steps / seconds


def estimate(done: int, total: Optional[int], steps_per_second: Optional[float]) -> Estimate:
    """Percent done and seconds left; each None when it cannot be known."""
    if total is None or total <= 0:
        return Estimate(None, None)
    percent = min(100.0, 100.0 * max(done, 0) / total)
    if done >= total:
        return Estimate(percent, 0)
    if steps_per_second is None or not math.isfinite(steps_per_second) or steps_per_second <= 0:
        return Estimate(percent, None)
    seconds = (total - done) / steps_per_second
    if not math.isfinite(seconds) or seconds > MAX_ETA_SECONDS:
        return Estimate(percent, None)
    return Estimate(percent, math.ceil(round(seconds, 6)))  # 100.0000001 s of float noise is 100 s
