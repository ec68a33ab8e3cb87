#!/usr/bin/env python
"""B2: what metrics cost training. Throughput with metrics on against off, same job, same machine.

Runs `tandem run jobs/mnist-ddp.yaml` alternately with spec.metrics.enabled true and false
(the order flips every round, so drift in the machine's load hits both sides alike) and takes
each run's throughput from the training script's own clock: "done: N steps in T s, W ranks"
(the training loop only; process start-up is not in it). "On" includes everything metrics
cost: the per-step hooks, the shipper processes, and the local Ray starting during training.

    python bench/metrics_overhead.py --rounds 5 --steps 500

Prints the runs, the medians and the loss in percent (target: at most 1 %), and writes them as
JSON (--output).
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
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


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("torch", "ray"):
        try:
            out[name] = __import__(name).__version__
        except ImportError:
            out[name] = "-"
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--output", type=Path, default=None)
    args = p.parse_args()
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
    result = {
        "benchmark": "B2 metrics overhead", "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()}, {__import__('os').cpu_count()} CPUs",
        "versions": versions(), "workers": args.workers, "steps": args.steps, "batch": args.batch_size,
        "runs": runs, "median_on": on, "median_off": off, "lost_percent": lost,
        "spread_off_percent": (max(runs["off"]) - min(runs["off"])) / off * 100,
    }
    print(f"median on {on:.1f}, off {off:.1f} samples/s: {lost:+.2f} % lost "
          f"(off runs spread {result['spread_off_percent']:.1f} %)")
    if args.output:
        args.output.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
