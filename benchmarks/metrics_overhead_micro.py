"""B2, the per-step cost: what the "on" path adds to one DDP step, measured in one process.

A one-rank gloo DDP model (the DDP example's) runs alternating blocks of steps with Tandem's
timed allreduce hook + optimizer post-hook + `reporter.step()` (a real Reporter with its daemon
thread and shipper; TANDEM_METRICS_ADDRESS points at a port nobody listens on, so the shipper
just buffers) and with the plain allreduce hook. Blocks are short and interleaved, so load from
elsewhere on the machine falls on both sides alike; the figure is the median over blocks of the
paired difference in CPU time per step (process CPU time, all threads: the reporter's daemon
thread included; the shipper is a separate, mostly idle process). Prints one line: ``MICRO {...}``.
"""

# No `from __future__ import annotations`: DDP checks the comm hook's annotations at runtime.
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "jobs"))
from switchable_metrics import switchable_metrics
from train_ddp import make_model


def main(blocks: int = 40, block_steps: int = 100, batch: int = 64) -> dict:
    from tandem._sys.ports import free_port

    dead_port = free_port()  # nothing listens there
    os.environ.update({"TANDEM_METRICS": "1", "TANDEM_JOB": "b2-micro", "TANDEM_METRICS_ADDRESS": f"127.0.0.1:{dead_port}",
                       "TANDEM_METRICS_CONNECT_TIMEOUT": "3600"})
    from tandem.metrics.reporter import Reporter

    store = dist.FileStore(tempfile.mktemp(prefix="b2-micro-"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    x, y = torch.randn(batch, 64), torch.randint(0, 10, (batch,))
    model = make_model(64, 128, 10, 0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    ddp = DistributedDataParallel(model)
    loss_fn = nn.CrossEntropyLoss()
    reporter = Reporter(os.environ)
    state = switchable_metrics(ddp, optimizer, reporter, batch)

    def block() -> float:
        """CPU seconds per step (all threads of this process): other load on the machine delays a
        step's wall time but hardly its CPU time."""
        started = time.process_time()
        for _ in range(block_steps):
            optimizer.zero_grad(set_to_none=True)
            loss_fn(ddp(x), y).backward()
            optimizer.step()
        return (time.process_time() - started) / block_steps

    for _ in range(5):
        block()  # warm-up
    on, off = [], []
    for i in range(blocks):
        for side in ((True, False) if i % 2 == 0 else (False, True)):
            state["on"] = side
            (on if side else off).append(block())
    # reporter.step alone
    n = 200_000
    started = time.perf_counter()
    for _ in range(n):
        reporter.step(batch, wait=0.001)
    step_call = (time.perf_counter() - started) / n
    reporter.close()
    dist.destroy_process_group()
    diffs = [a - b for a, b in zip(on, off, strict=False)]
    return {"blocks": blocks, "block_steps": block_steps, "step_on_ms": statistics.median(on) * 1e3,
            "step_off_ms": statistics.median(off) * 1e3, "added_us_per_step": statistics.median(diffs) * 1e6,
            "added_percent": statistics.median(diffs) / statistics.median(off) * 100,
            "reporter_step_us": step_call * 1e6}


if __name__ == "__main__":
    print("MICRO " + json.dumps(main()), flush=True)
