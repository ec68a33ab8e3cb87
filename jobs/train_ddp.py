"""PyTorch DDP example: an MLP classifier on synthetic data, no download needed.

Run under torchrun (Tandem's launcher runs it for you):

    torchrun --nproc-per-node=2 jobs/train_ddp.py --epochs 1

It checkpoints every --checkpoint-every steps (rank 0 writes, atomically) and resumes from the
last checkpoint on start, so a whole-group restart loses at most the steps since then. On
SIGTERM (a preempted or deleted pod, Ctrl-C of `tandem run`) every rank stops at the same step,
rank 0 saves a checkpoint there, and the process exits 143: a preemption loses no step it
trained (tandem.preemption). Fault injection (--crash-at-step, --sleep-per-step) exists for
Tandem's own tests.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Optional

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

CHECKPOINT = "checkpoint.pt"


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--steps", type=int, default=0, help="total steps; 0: epochs x steps per epoch")
    p.add_argument("--batch-size", type=int, default=64, help="per rank")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--samples", type=int, default=8192)
    p.add_argument("--features", type=int, default=64)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="auto: cuda (nccl) when a GPU is visible, else cpu (gloo)")
    default_ckpt = os.environ.get("TANDEM_CHECKPOINT_DIR") or os.path.join(
        "checkpoints", os.environ.get("TANDEM_JOB") or "local"
    )
    p.add_argument("--checkpoint-dir", default=default_ckpt)
    p.add_argument("--checkpoint-every", type=int, default=20, help="steps; 0: only on SIGTERM")
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--output-dir", default=None, help="each rank writes rank<k>.json here at the end")
    p.add_argument("--crash-at-step", type=int, default=None, help="test only: exit at this step, once")
    p.add_argument("--crash-rank", type=int, default=0)
    p.add_argument("--crash-exit-code", type=int, default=1)
    p.add_argument("--sleep-per-step", type=float, default=0.0, help="test only: a deliberately slow worker")
    p.add_argument("--slow-rank", type=int, default=None, help="rank that sleeps; default: all ranks")
    return p.parse_args(argv)


def synthetic_dataset(samples: int, features: int, classes: int, seed: int) -> TensorDataset:
    """Same tensors on every rank: labels from a fixed random linear teacher, so it is learnable."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(samples, features, generator=gen)
    teacher = torch.randn(features, classes, generator=gen)
    y = (x @ teacher + 0.1 * torch.randn(samples, classes, generator=gen)).argmax(dim=1)
    return TensorDataset(x, y)


def make_model(features: int, hidden: int, classes: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, classes))


def checksum(model: nn.Module) -> str:
    """sha256 of every parameter's bytes, in state_dict order: equal across ranks iff weights are."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def load_checkpoint(directory: Path, rank: int) -> Optional[dict[str, Any]]:
    """Rank 0 reads the checkpoint and broadcasts it: other ranks need no shared volume."""
    payload: list[Any] = [None]
    path = directory / CHECKPOINT
    if rank == 0 and path.exists():
        payload[0] = torch.load(path, map_location="cpu", weights_only=True)
    dist.broadcast_object_list(payload, src=0)
    return payload[0]


def save_checkpoint(directory: Path, state: dict[str, Any]) -> None:
    """Write to a temp file, then os.replace: a crash mid-write never leaves a torn checkpoint."""
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{CHECKPOINT}.tmp.{os.getpid()}"
    torch.save(state, tmp)
    os.replace(tmp, directory / CHECKPOINT)


def maybe_crash(args: argparse.Namespace, step: int, rank: int, directory: Path) -> None:
    """Fault injection: exit once per checkpoint dir (marker file), so the restarted group runs through."""
    if args.crash_at_step is None or step != args.crash_at_step or rank != args.crash_rank:
        return
    marker = directory / f"crash-injected-rank{rank}-step{step}"
    if marker.exists():
        return
    directory.mkdir(parents=True, exist_ok=True)
    marker.write_text(str(args.crash_exit_code))
    print(f"rank {rank}: injected crash at step {step}, exit code {args.crash_exit_code}", flush=True)
    os._exit(args.crash_exit_code)


def write_result(args: argparse.Namespace, model: nn.Module, steps: int, loss: float) -> None:
    if not args.output_dir:
        return
    rank, world = dist.get_rank(), dist.get_world_size()
    seen = {k: os.environ.get(k) for k in ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "LOCAL_RANK")}
    result = {"rank": rank, "world_size": world, "steps": steps, "checksum": checksum(model), "loss": loss, "env": seen}
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"rank{rank}.json").write_text(json.dumps(result, indent=2))


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    # --- Tandem preemption hook ----------------------------------------------------------
    # SIGTERM sets a flag instead of killing the process; the loop saves and stops at the next
    # step end. Without tandem installed, SIGTERM ends the process as before.
    try:
        from tandem.preemption import pytorch as preemption
    except ImportError:
        preemption = None
    if preemption is not None:
        preemption.install()
    # --------------------------------------------------------------------------------------
    dist.init_process_group("nccl" if use_cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)

    dataset = synthetic_dataset(args.samples, args.features, args.classes, args.seed)
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=args.seed, drop_last=True)
    loader = DataLoader(dataset, batch_size=args.batch_size, sampler=sampler, drop_last=True)
    steps_per_epoch = len(loader)
    total = args.steps or args.epochs * steps_per_epoch

    model = make_model(args.features, args.hidden, args.classes, args.seed).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    directory = Path(args.checkpoint_dir)
    step = 0
    state = load_checkpoint(directory, rank)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step = int(state["step"])
        print(f"rank {rank}: resumed from step {step}", flush=True)
    ddp = DistributedDataParallel(model, device_ids=[local_rank] if use_cuda else None)
    loss_fn = nn.CrossEntropyLoss()
    slow = args.sleep_per_step > 0 and args.slow_rank in (None, rank)

    # --- Tandem metrics hook -------------------------------------------------------------
    # One line reports every optimizer step to Tandem (samples/s, and the compute/wait split
    # that names a straggler); a no-op outside Tandem, or where tandem is not installed.
    try:
        from tandem import metrics
    except ImportError:
        metrics = None
    if metrics is not None:
        # total_steps: the steps this process will take (after a resume, the rest), for percent and ETA.
        metrics.track_ddp(ddp, optimizer, samples_per_step=args.batch_size, total_steps=total - step)
    # --------------------------------------------------------------------------------------
    loss_value: Optional[float] = None
    started = time.monotonic()
    while step < total:
        epoch, skip = divmod(step, steps_per_epoch)
        sampler.set_epoch(epoch)
        for batch, (x, y) in enumerate(loader):
            if batch < skip:
                continue  # resuming mid-epoch: same order (seeded sampler), skip the done batches
            if step >= total:
                break
            maybe_crash(args, step, rank, directory)
            if slow:
                time.sleep(args.sleep_per_step)
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(ddp(x.to(device)), y.to(device))
            loss.backward()
            optimizer.step()
            step += 1
            loss_value = loss.item()
            # [tandem-metrics hook] track_ddp reports this step (optimizer step post-hook)
            if step % args.log_every == 0 or step == total:
                print(f"rank {rank}: step {step}/{total} loss {loss_value:.4f}", flush=True)
                if metrics is not None:
                    metrics.reporter().loss(loss_value)  # for TensorBoard (spec.tensorboard)
            stopping = preemption is not None and preemption.should_stop()  # every rank, every step
            periodic = args.checkpoint_every and (step % args.checkpoint_every == 0 or step == total)
            if rank == 0 and (periodic or stopping):
                save_checkpoint(directory, {"step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict()})
            if stopping:
                print(f"rank {rank}: stopping at step {step}: asked to stop (SIGTERM)"
                      + (f", checkpoint saved at step {step}" if rank == 0 else ""), flush=True)
                dist.destroy_process_group()
                return preemption.exit_code()
    elapsed = time.monotonic() - started
    if rank == 0:
        print(f"done: {step} steps in {elapsed:.1f}s, {world} ranks", flush=True)
    write_result(args, model, step, loss_value)
    dist.barrier()
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
