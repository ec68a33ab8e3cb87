"""A real collective deadlock, for hang detection: two ranks train in lock-step, reporting
each step, until at step HANG_AT rank 1 skips the all-reduce (a rank-dependent branch, as in the
bug) and goes on to work of its own that never ends, while rank 0 blocks in the all-reduce,
waiting for it. Neither exits nor reports another step; only a progress deadline can tell."""

import time

import torch
import torch.distributed as dist

from tandem import metrics

HANG_AT = 20

dist.init_process_group("gloo")
rank = dist.get_rank()
reporter = metrics.reporter()
value = torch.ones(1024)
for step in range(1, 10_000):
    time.sleep(0.1)  # the step's compute
    if rank == 1 and step == HANG_AT:
        print(f"rank 1 skips the all-reduce of step {step}", flush=True)
        reporter.step(samples=8)
        while True:
            time.sleep(1)  # rank 1's own work, which never ends; rank 0 waits in the all-reduce
    if rank == 0 and step == HANG_AT:
        print(f"rank 0 enters the all-reduce of step {step}", flush=True)
    dist.all_reduce(value)
    reporter.step(samples=8)
