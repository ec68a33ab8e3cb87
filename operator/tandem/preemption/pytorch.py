"""PyTorch: every rank stops at the same step when any one of them is asked to.

    from tandem.preemption import pytorch as preemption
    preemption.install()
    for batch in loader:
        train_step(batch)
        if preemption.should_stop():      # a collective: call it on every rank, every step
            if rank == 0: save(step)
            break

Why a collective: SIGTERM reaches the ranks a few milliseconds apart, so a rank that looked at
its own flag alone could leave the loop one step before its peers, which then wait forever in
the next all-reduce, and the checkpoint would hold a step some ranks never took. One MAX
all-reduce of one integer per step costs microseconds beside a training step.
"""

from __future__ import annotations

from typing import Any, Optional

from . import exit_code, install, request, requested, signal_number

__all__ = ["exit_code", "install", "requested", "should_stop", "signal_number"]


def should_stop(group: Optional[Any] = None) -> bool:
    """Whether any rank of `group` (default: the world) was asked to stop; the same answer on
    every rank. Without an initialised process group, this process's own flag. When a peer was
asked and this rank not (yet), this rank's flag is set too."""
    import torch
    import torch.distributed as dist

    local = requested()
    if not (dist.is_available() and dist.is_initialized()):
        return local
    device = torch.device("cpu")
    if dist.get_backend(group) == "nccl":  # NCCL reduces GPU tensors only
        device = torch.device("cuda", torch.cuda.current_device())
    flag = torch.tensor([1 if local else 0], dtype=torch.int32, device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=group)
    if flag.item() and not local:
        request()  # a peer was asked: this rank stops too, and exit_code() says so
    return bool(flag.item())
