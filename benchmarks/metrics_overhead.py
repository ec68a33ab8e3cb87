#!/usr/bin/env python
"""B2: what metrics cost training: throughput with metrics on against off, in the same run.

One `tandem run jobs/mnist-ddp.yaml` (2 workers, metrics enabled, so the local Ray, the
collector and the shippers are all up) runs benchmarks/metrics_overhead_train.py: the DDP example's
model and data, alternating phases with Tandem's metrics on (timed allreduce hook + a reported
step, shipped through Ray) and off (plain allreduce, nothing reported), the order flipped every
round, all ranks switching together. Throughput of each phase = samples of all ranks / wall
time of the phase. Lost = (median off - median on) / median off.

    python benchmarks/metrics_overhead.py [--rounds 5] [--phase-steps 300] [--no-append] [--output F.json]
    python benchmarks/metrics_overhead.py --end-to-end [--rounds 5] [--steps 500]

--end-to-end instead alternates whole runs with spec.metrics.enabled true/false (throughput from
the script's own "done: N steps in T s" line): that also charges the local Ray's start-up, which
competes for the CPU with the first seconds of training.

Appends a section to benchmarks/RESULTS.md (unless --no-append). The load average before and after
is recorded: on a shared machine it is the first thing to check.
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
from common import REPO, append_results, loadavg, table

DONE = re.compile(r"done: (\d+) steps in ([0-9.]+)s, (\d+) ranks")
B2 = re.compile(r"B2 (\{.*\})")


def checkout_env() -> dict[str, str]:
    """This checkout's Tandem, not whichever one the environment has installed."""
    return {**os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "operator"), os.environ.get("PYTHONPATH")]))}


def tandem_run(command: list[str], enabled: bool, workers: int, runs_dir: Path) -> str:
    argv = [sys.executable, "-m", "tandem", "run", str(REPO / "jobs/mnist-ddp.yaml"), "--runs-dir", str(runs_dir),
            "--workers", str(workers), "--set", "metadata.name=overhead",
            "--set", f"spec.metrics.enabled={'true' if enabled else 'false'}",
            "--set", "spec.command=" + json.dumps(command)]
    done = subprocess.run(argv, cwd=REPO, env=checkout_env(), capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout + done.stderr


def in_run(args: argparse.Namespace, runs_dir: Path) -> dict[str, list[float]]:
    command = ["python", "benchmarks/metrics_overhead_train.py", "--rounds", str(args.rounds),
               "--phase-steps", str(args.phase_steps), "--batch-size", str(args.batch_size)]
    output = tandem_run(command, True, args.workers, runs_dir)
    match = B2.search(output)
    if not match:
        raise SystemExit(f"no B2 line in the output:\n{output[-3000:]}")
    data = json.loads(match.group(1))
    if not data["reporting"]:
        raise SystemExit("the training script's reporter was not enabled: nothing was measured")
    runs: dict[str, list[float]] = {"on": [], "off": [], "cpu_on": [], "cpu_off": []}
    for phase in data["phases"]:
        side = "on" if phase["on"] else "off"
        runs[side].append(phase["samples_per_s"])
        runs[f"cpu_{side}"].append(phase["cpu_us_per_sample"])
        print(f"round {phase['round']}: metrics {side:3}  {phase['samples_per_s']:10.1f} samples/s  "
              f"{phase['cpu_us_per_sample']:7.1f} CPU us/sample  ({phase['seconds']:.1f} s)", flush=True)
    return runs


def end_to_end(args: argparse.Namespace, runs_dir: Path) -> dict[str, list[float]]:
    runs: dict[str, list[float]] = {"on": [], "off": []}
    command = ["python", "jobs/train_ddp.py", "--steps", str(args.steps), "--batch-size", str(args.batch_size),
               "--checkpoint-every", "0", "--log-every", str(args.steps)]
    for round_ in range(args.rounds):
        for enabled in ((True, False) if round_ % 2 == 0 else (False, True)):
            started = time.monotonic()
            match = DONE.search(tandem_run(command, enabled, args.workers, runs_dir))
            if not match:
                raise SystemExit("no 'done:' line in the output")
            n, seconds, ranks = int(match.group(1)), float(match.group(2)), int(match.group(3))
            rate = n * args.batch_size * ranks / seconds
            runs["on" if enabled else "off"].append(rate)
            print(f"round {round_ + 1}: metrics {'on ' if enabled else 'off'}  {rate:10.1f} samples/s"
                  f"  ({time.monotonic() - started:.0f} s)", flush=True)
    return runs


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--phase-steps", type=int, default=300, help="steps per phase (in-run mode)")
    p.add_argument("--end-to-end", action="store_true", help="alternate whole runs instead of phases")
    p.add_argument("--steps", type=int, default=500, help="steps per run (--end-to-end)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--output", type=Path, default=None)
    p.add_argument("--no-append", action="store_true", help="do not append to benchmarks/RESULTS.md")
    args = p.parse_args()
    load_before = loadavg()
    with tempfile.TemporaryDirectory(prefix="tandem-overhead-") as tmp:
        runs = end_to_end(args, Path(tmp)) if args.end_to_end else in_run(args, Path(tmp))
    micro = None
    if not args.end_to_end:
        done = subprocess.run([sys.executable, str(REPO / "benchmarks/metrics_overhead_micro.py")], cwd=REPO,
                              env=checkout_env(), capture_output=True, text=True, timeout=600)
        found = re.search(r"MICRO (\{.*\})", done.stdout)
        micro = json.loads(found.group(1)) if found else None
        if micro:
            print(f"per step: +{micro['added_us_per_step']:.1f} us CPU with metrics on "
                  f"({micro['step_off_ms']:.2f} ms CPU per one-rank step); reporter.step() {micro['reporter_step_us']:.2f} us")
    on, off = statistics.median(runs["on"]), statistics.median(runs["off"])
    lost = (off - on) / off * 100
    paired = [(b - a) / b * 100 for a, b in zip(runs["on"], runs["off"], strict=False)]  # per round, same moment
    cpu_extra = None
    if runs.get("cpu_on"):
        cpu_on, cpu_off = statistics.median(runs["cpu_on"]), statistics.median(runs["cpu_off"])
        cpu_extra = (cpu_on - cpu_off) / cpu_off * 100
    spread = (max(runs["off"]) - min(runs["off"])) / off * 100
    load_after = loadavg()
    mode = "end-to-end (whole runs)" if args.end_to_end else "in-run phases"
    result = {
        "benchmark": "B2 metrics overhead", "mode": mode,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.node()}, {os.cpu_count()} CPUs", "python": platform.python_version(),
        "workers": args.workers, "batch": args.batch_size, "runs": runs,
        "median_on": on, "median_off": off, "lost_percent": lost, "spread_off_percent": spread,
        "paired_lost_percent": paired, "median_paired_lost_percent": statistics.median(paired),
        "cpu_extra_percent": cpu_extra, "micro": micro,
        "loadavg_before": load_before, "loadavg_after": load_after,
    }
    print(f"{mode}: median on {on:.1f}, off {off:.1f} samples/s: {lost:+.2f} % lost "
          f"(median of per-round pairs {statistics.median(paired):+.2f} %; off spread {spread:.1f} %; "
          f"load average {load_before} -> {load_after})"
          + ("" if cpu_extra is None else f"; CPU per sample {cpu_extra:+.2f} %"))
    if args.output:
        args.output.write_text(json.dumps(result, indent=2) + "\n")
    if not args.no_append:
        headers = ["round", "on (samples/s)", "off (samples/s)", "lost"]
        rows = [[i + 1, f"{a:.1f}", f"{b:.1f}", f"{d:+.1f} %"]
                for i, (a, b, d) in enumerate(zip(runs["on"], runs["off"], paired, strict=False))]
        if runs.get("cpu_on"):
            headers += ["CPU us/sample on", "off"]
            for row, a, b in zip(rows, runs["cpu_on"], runs["cpu_off"], strict=False):
                row += [f"{a:.1f}", f"{b:.1f}"]
        if args.end_to_end:
            what = (f"Whole `tandem run jobs/mnist-ddp.yaml` runs ({args.workers} workers, {args.steps} steps of "
                    f"{args.batch_size} samples per rank), spec.metrics.enabled true and false alternately (order "
                    "flipped every round); throughput from the script's own clock over its training loop. "
                    "'On' includes the local Ray starting while training runs.")
            command = f"python benchmarks/metrics_overhead.py --end-to-end --rounds {args.rounds} --steps {args.steps}"
        else:
            what = (f"One `tandem run` ({args.workers} workers, the DDP example's model and data, batch "
                    f"{args.batch_size} per rank) alternating {args.phase_steps}-step phases with metrics on "
                    "(timed allreduce hook + reporter.step, shipped through the local Ray) and off (plain "
                    "allreduce, nothing reported), order flipped every round, after Ray was up and a warm-up; "
                    "samples/s of all ranks per phase.")
            command = f"python benchmarks/metrics_overhead.py --rounds {args.rounds} --phase-steps {args.phase_steps}"
        body = "\n".join([
            what, "",
            table(headers, rows), "",
            f"**Median on {on:.1f}, off {off:.1f} samples/s: {lost:+.2f} % throughput lost with metrics on** "
            f"(target: at most 1 %; negative = on was faster). Spread of the off figures: {spread:.1f} % "
            f"(max-min over median); median of the per-round differences: {statistics.median(paired):+.2f} %. "
            f"Load average (1/5/15 min) before {load_before}, after {load_after}."
            + ("" if cpu_extra is None else
               " CPU time per sample (ranks + shippers; gloo's polling while a rank waits is in it, "
               "so other load moves it too): "
               f"{cpu_extra:+.2f} % with metrics on."),
        ])
        if micro:
            step_ms = 1e3 * statistics.median(
                [args.batch_size * args.workers / r for r in runs["off"]])  # wall ms per step, metrics off
            body += "\n\n" + (
                f"Per-step cost (benchmarks/metrics_overhead_micro.py: one-rank DDP, {micro['blocks']} interleaved "
                f"blocks of {micro['block_steps']} steps each side, CPU time per step, median of paired "
                f"differences): **+{micro['added_us_per_step']:.1f} us per step** with metrics on "
                f"({micro['step_off_ms']:.3f} ms CPU per step of that tiny one-rank model, "
                f"{micro['added_percent']:+.1f} %); `reporter.step()` alone {micro['reporter_step_us']:.2f} us. "
                f"Against the {args.workers}-worker example's step above ({step_ms:.1f} ms wall, median of the "
                f"off phases) that is {micro['added_us_per_step'] / 1e3 / step_ms * 100:.2f} % of a step.")
        append_results(f"B2: metrics overhead, {mode}", body, command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
