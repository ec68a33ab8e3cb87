"""B2's training script: the DDP example's model and data, with Tandem's metrics switched on and
off in alternating phases of the same run (see benchmarks/metrics_overhead.py).

"On" is exactly what `tandem.metrics.track_ddp` does (the timed allreduce comm hook and a
`reporter.step()` per optimizer step, shipped to the local Ray); "off" is the plain allreduce
and no reporting. The phases start once the run's Ray accepts connections and a warm-up has
passed, so they compare steady states; all ranks switch together (a barrier at each phase
boundary). Besides wall-clock throughput, each phase records the CPU time the ranks and their
shippers spent per sample, which other load on a shared machine disturbs much less. Rank 0
prints one line: ``B2 {"phases": [...]}``.
"""

# No `from __future__ import annotations`: DDP checks the comm hook's annotations at runtime.

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "jobs"))
from switchable_metrics import switchable_metrics
from train_ddp import make_model, synthetic_dataset

from tandem import metrics
from tandem.metrics.shipper import reachable


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--phase-steps", type=int, default=300)
    p.add_argument("--warmup-steps", type=int, default=200, help="after Ray is up")
    p.add_argument("--batch-size", type=int, default=64)
    args = p.parse_args()

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    dataset = synthetic_dataset(8192, 64, 10, 0)
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=0, drop_last=True)
    loader = DataLoader(dataset, batch_size=args.batch_size, sampler=sampler, drop_last=True)
    model = make_model(64, 128, 10, 0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    ddp = DistributedDataParallel(model)
    loss_fn = nn.CrossEntropyLoss()

    reporter = metrics.reporter()
    state = switchable_metrics(ddp, optimizer, reporter, args.batch_size)

    def batches():
        epoch = 0
        while True:
            sampler.set_epoch(epoch)
            yield from loader
            epoch += 1

    stream = batches()

    def steps(n: int) -> None:
        for _ in range(n):
            x, y = next(stream)
            optimizer.zero_grad(set_to_none=True)
            loss_fn(ddp(x), y).backward()
            optimizer.step()

    # Warm up until the run's Ray is up (metrics can flow), then a little more.
    address = os.environ.get("TANDEM_METRICS_ADDRESS", "")
    up = torch.tensor([0])
    deadline = time.monotonic() + 180
    while True:
        steps(20)
        up[0] = 1 if (not address or reachable(address, 0.2) or time.monotonic() > deadline) else 0
        dist.all_reduce(up, op=dist.ReduceOp.MIN)
        if up.item():
            break
    state["on"] = True  # let the shippers connect and the collector start during the warm-up
    steps(args.warmup_steps)

    def cpu_seconds() -> float:
        """CPU time of this rank's process (all its threads) and of its metrics shipper."""
        total = time.process_time()
        shipper = getattr(reporter, "_shipper", None)
        if shipper is not None:
            try:
                stat = Path(f"/proc/{shipper.pid}/stat").read_text()
                fields = stat[stat.rindex(")") + 2:].split()
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            except (OSError, ValueError, IndexError):
                pass
        return total

    phases = []
    for round_ in range(args.rounds):
        for on in ((True, False) if round_ % 2 == 0 else (False, True)):
            state["on"] = on
            reporter.mark() if on and hasattr(reporter, "mark") else None
            dist.barrier()
            started, cpu_started = time.perf_counter(), cpu_seconds()
            steps(args.phase_steps)
            dist.barrier()
            seconds = time.perf_counter() - started
            cpu = torch.tensor([cpu_seconds() - cpu_started], dtype=torch.float64)
            dist.all_reduce(cpu)  # all ranks' CPU seconds
            samples = args.phase_steps * args.batch_size * world
            phases.append({"round": round_ + 1, "on": on, "seconds": seconds, "samples_per_s": samples / seconds,
                           "cpu_us_per_sample": cpu.item() / samples * 1e6})
    if rank == 0:
        print("B2 " + json.dumps({"world": world, "reporting": bool(getattr(reporter, "enabled", False)),
                                  "phases": phases}), flush=True)
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
