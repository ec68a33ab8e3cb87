#!/usr/bin/env python
"""B2: what metrics cost training. Throughput with metrics on against off, same job, same machine.

Runs `tandem run jobs/mnist-ddp.yaml` alternately with spec.metrics.enabled true and false
(the order flips every round, so drift in the machine's load hits both sides alike) and takes
each run's throughput from the training script's own clock: "done: N steps in T s, W ranks"
(the training loop only; process start-up is not in it). "On" includes everything metrics
cost: the per-step hooks, the shipper processes, and the local Ray starting during training.

    python bench/metrics_overhead.py --rounds 5 --steps 500 [--no-append] [--output FILE.json]

Prints the runs, the medians and the loss in percent (target: at most 1 %), appends a section
to bench/RESULTS.md (unless --no-append) and writes the figures as JSON (--output). The load
average before and after is recorded: on a shared machine it is the first thing to check.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, append_results, table  # noqa: E402

DONE = re.compile(r"done: (\d+) steps in ([0-9.]+)s, (\d+) ranks")


def one_run(enabled: bool, steps: int, batch: int, workers: int, runs_dir: Path) -> float:
    command = ["python", "jobs/train_ddp.py", "--steps", str(steps), "--batch-size", str(batch),
               "--checkpoint-every", "0", "--log-every", str(steps)]
    argv = [sys.executable, "-m", "tandem", "run", str(REPO / "jobs/mnist-ddp.yaml"), "--runs-dir", str(runs_dir),
            "--workers", str(workers), "--set", "metadata.name=overhead",
            "--set", f"spec.metrics.enabled={'true' if enabled else 'false'}",
            "--set", "spec.command=" + json.dumps(command)]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=600)
    match = DONE.search(done.stdout + done.stderr)
    if done.returncode != 0 or not match:
        raise SystemExit(f"run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    n, seconds, ranks = int(match.group(1)), float(match.group(2)), int(match.group(3))
    return n * batch * ranks / seconds


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "-"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--output", type=Path, default=None)
    p.add_argument("--no-append", action="store_true", help="do not append to bench/RESULTS.md")
    args = p.parse_args()
    load_before = loadavg()
    runs = {"on": [], "off": []}
    with tempfile.TemporaryDirectory(prefix="tandem-overhead-") as tmp:
        for round_ in range(args.rounds):
            order = (True, False) if round_ % 2 == 0 else (False, True)
            for enabled in order:
                started = time.monotonic()
                rate = one_run(enabled, args.steps, args.batch_size, args.workers, Path(tmp))
                runs["on" if enabled else "off"].append(rate)
                print(f"round {round_ + 1}: metrics {'on ' if enabled else 'off'}  {rate:10.1f} samples/s"
                      f"  ({time.monotonic() - started:.0f} s)", flush=True)
    on, off = statistics.median(runs["on"]), statistics.median(runs["off"])
    lost = (off - on) / off * 100
    spread = (max(runs["off"]) - min(runs["off"])) / off * 100
    load_after = loadavg()
    result = {
        "benchmark": "B2 metrics overhead", "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.node()}, {os.cpu_count()} CPUs", "python": platform.python_version(),
        "workers": args.workers, "steps": args.steps, "batch": args.batch_size, "runs": runs,
        "median_on": on, "median_off": off, "lost_percent": lost, "spread_off_percent": spread,
        "loadavg_before": load_before, "loadavg_after": load_after,
    }
    print(f"median on {on:.1f}, off {off:.1f} samples/s: {lost:+.2f} % lost "
          f"(off runs spread {spread:.1f} %; load average {load_before} -> {load_after})")
    if args.output:
        args.output.write_text(json.dumps(result, indent=2) + "\n")
    if not args.no_append:
        rows = [(i + 1, f"{a:.1f}", f"{b:.1f}") for i, (a, b) in enumerate(zip(runs["on"], runs["off"]))]
        body = "\n".join([
            f"`tandem run jobs/mnist-ddp.yaml`, {args.workers} workers, {args.steps} steps of {args.batch_size} "
            "samples per rank, metrics on and off alternately (order flipped every round); throughput from "
            "the training script's own clock (training loop only), total samples/s.",
            "",
            table(["round", "on (samples/s)", "off (samples/s)"], rows),
            "",
            f"**Median on {on:.1f}, off {off:.1f} samples/s: {lost:+.2f} % throughput lost with metrics on** "
            f"(target: at most 1 %). Spread of the off runs: {spread:.1f} % (max-min over median). "
            f"Load average (1/5/15 min) before {load_before}, after {load_after}.",
        ])
        append_results("B2: metrics overhead (metrics on vs off)", body,
                       f"python bench/metrics_overhead.py --rounds {args.rounds} --steps {args.steps}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
