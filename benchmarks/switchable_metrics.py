"""B2's switch: Tandem's per-step metrics on a DDP model that a benchmark turns on and off.

"On" is exactly what `tandem.metrics.track_ddp` installs (the timed allreduce comm hook and a
`reporter.step()` after each optimizer step); "off" is the plain allreduce and no reporting.
Both B2 scripts (metrics_overhead_micro.py and metrics_overhead_train.py) flip the same switch.
"""

# No `from __future__ import annotations`: DDP checks the comm hook's annotations at runtime.
import torch
import torch.distributed as dist
from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook
from torch.nn.parallel import DistributedDataParallel


def switchable_metrics(ddp: DistributedDataParallel, optimizer: torch.optim.Optimizer, reporter,
                       samples_per_step: int) -> dict:
    """Installs the hooks; returns the switch, ``{"on": False}``, for the caller to flip."""
    from tandem.metrics.pytorch import _WaitTimer, timed_allreduce_hook

    state = {"on": False}
    timer = _WaitTimer()
    timed = timed_allreduce_hook(timer)

    def hook(process_group, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
        return timed(process_group, bucket) if state["on"] else allreduce_hook(process_group, bucket)

    def after_step(_optimizer, _args, _kwargs) -> None:
        if state["on"]:
            reporter.step(samples_per_step, wait=timer.take())

    ddp.register_comm_hook(None, hook)
    optimizer.register_step_post_hook(after_step)
    return state
