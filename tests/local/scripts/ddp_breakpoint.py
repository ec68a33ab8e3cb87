"""Rank 0 stops at a breakpoint while rank 1 waits in the all-reduce (for `tandem run --debug`)."""

import torch
import torch.distributed as dist

dist.init_process_group("gloo")
rank = dist.get_rank()
value = torch.tensor([float(rank + 1)])
if rank == 0:
    secret = 6 * 7
    breakpoint()
dist.all_reduce(value)
print(f"rank {rank} all-reduced {value.item():.0f}", flush=True)
dist.destroy_process_group()
