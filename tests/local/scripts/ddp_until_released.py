"""Two ranks train in lock-step, reporting every step, until the test releases them: while the
file named by the first argument is absent they keep training; once rank 0 sees it, every rank
takes AFTER more steps and ends. A test can thus act on a run that is surely still training
(stop its Ray) and know that training goes on after it: a fixed number of steps cannot promise
that, since on a loaded machine Ray's start may take as long as the whole training.

Rank 0's view of the file travels in the step's all-reduce, so both ranks stop at the same step
(a rank that stopped alone would leave its peer waiting in the next all-reduce)."""

import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist

from tandem import metrics

AFTER = 50
BATCH = 64

release = Path(sys.argv[1])
dist.init_process_group("gloo")
rank = dist.get_rank()
reporter = metrics.reporter()
step, end = 0, None
while end is None or step < end:
    time.sleep(0.02)  # the step's compute
    seen = torch.tensor([1.0 if rank == 0 and release.exists() else 0.0])
    dist.all_reduce(seen)
    step += 1
    reporter.step(samples=BATCH)
    if end is None and seen.item() > 0:
        end = step + AFTER
        print(f"rank {rank}: released at step {step}", flush=True)
print(f"rank {rank}: done: {step} steps", flush=True)
dist.destroy_process_group()
