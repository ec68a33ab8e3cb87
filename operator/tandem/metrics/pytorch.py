"""PyTorch helper: one line after building the DDP model reports every step, no loop edits.

`track_ddp(ddp, optimizer, samples_per_step)` registers

- a DDP communication hook: the default allreduce, timed. For each step it notes when the
  last gradient bucket became ready (this rank's backward is done) and when the last
  allreduce completed (every peer has arrived); the difference is the time this rank waited
  for the others, which is what tells a straggler from its victims (see `summary`);
- an optimizer step post-hook that calls `reporter.step(samples, wait=...)`.

The total number of steps (for status.progress's percent and ETA) is `total_steps` when given,
else len(loader) x epochs for a `loader` that knows its length (a DataLoader over a sized dataset
does; an iterable one does not, and then no total is reported rather than a guessed one).

Outside Tandem (a `NullReporter`) it registers nothing, so the model runs exactly as before.
"""

import sys
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Optional

from .reporter import reporter as default_reporter

if TYPE_CHECKING:
    import torch
    import torch.distributed as dist


class _WaitTimer:
    """Per step: the latest bucket-ready time and the latest allreduce-done time."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ready: Optional[float] = None
        self.done: Optional[float] = None

    def bucket_ready(self) -> float:
        now = time.perf_counter()
        with self.lock:
            self.ready = now if self.ready is None else max(self.ready, now)
        return now

    def bucket_done(self) -> None:
        now = time.perf_counter()
        with self.lock:
            self.done = now if self.done is None else max(self.done, now)

    def take(self) -> Optional[float]:
        with self.lock:
            ready, done, self.ready, self.done = self.ready, self.done, None, None
        if ready is None or done is None:
            return None
        return max(0.0, done - ready)


def timed_allreduce_hook(
    timer: _WaitTimer,
) -> "Callable[[Any, dist.GradBucket], torch.futures.Future[torch.Tensor]]":
    import torch
    import torch.distributed as dist
    from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

    # DDP checks these annotations (no `from __future__ import annotations` in this module).
    def hook(process_group: Any, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
        timer.bucket_ready()
        future = allreduce_hook(process_group, bucket)

        def finished(fut: Any) -> Any:
            timer.bucket_done()
            return fut.value()

        return future.then(finished)

    return hook


def steps_of(total_steps: Optional[int], loader: Any, epochs: int) -> Optional[int]:
    """The steps training will take: `total_steps`, else len(loader) x epochs; None when unknown."""
    if total_steps is not None:
        return int(total_steps) if total_steps > 0 else None
    if loader is None:
        return None
    try:
        per_epoch = len(loader)
    except TypeError:  # an IterableDataset's loader has no length
        return None
    return per_epoch * epochs if per_epoch > 0 and epochs > 0 else None


def track_ddp(model: Any, optimizer: Any, samples_per_step: float, reporter: Any = None, *,
              total_steps: Optional[int] = None, loader: Any = None, epochs: int = 1) -> Any:
    """Report each `optimizer.step()` of `model` (DDP or plain) as `samples_per_step` samples;
    the total steps (`total_steps`, or len(loader) x epochs) give status.progress its percent and ETA."""
    r = reporter if reporter is not None else default_reporter()
    if not getattr(r, "enabled", False):
        return r
    total = steps_of(total_steps, loader, epochs)
    if total is not None and hasattr(r, "total"):
        r.total(total)
    timer = _WaitTimer()
    timed = False
    if hasattr(model, "register_comm_hook"):
        try:
            model.register_comm_hook(getattr(model, "process_group", None), timed_allreduce_hook(timer))
            timed = True
        except Exception as error:  # noqa: BLE001 - e.g. a hook already set: report steps without the split
            print(f"tandem.metrics: cannot time DDP's allreduce ({error}); reporting steps only", file=sys.stderr)

    def after_step(_optimizer: Any, _args: Any, _kwargs: Any) -> None:
        r.step(samples_per_step, wait=timer.take() if timed else None)

    try:
        optimizer.register_step_post_hook(after_step)
    except Exception as error:  # noqa: BLE001 - metrics must never stop training
        print(f"tandem.metrics: cannot hook the optimizer ({error}); no metrics from this process", file=sys.stderr)
    return r
