"""B5: scaling of the example jobs at 1, 2 and 4 workers, through `tandem bench`.

    "$(hack/bootstrap.sh)/bin/python" benchmarks/b5_scaling.py [--workers 1,2,4] [--jobs jobs/mnist-ddp.yaml,...] [--no-append]

Runs `tandem bench FILE --workers 1,2,4` for each example (jobs/mnist-ddp.yaml and
jobs/keras-mwms.yaml, unmodified, metrics on as `tandem bench` requires) in a fresh runs
directory, writes its plot to benchmarks/b5_<job>.png (figures as JSON beside it) and records a table.
Where Tandem's metrics give no throughput (an example without the metrics hook), the figure
comes from the script's own closing line in worker 0's log ("done: S steps in T s, W ..."):
S x per-worker batch x W / T, marked "(log)".

On a machine with fewer cores than workers, the higher counts oversubscribe the CPU: their
figures then say how the launcher and the framework behave under contention, not how the job
scales; the table says so next to them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BENCH, REPO, append_results, table

DONE = re.compile(r"done: (\d+) steps in ([\d.]+)s, (\d+) (?:ranks|workers)")
DEFAULT_JOBS = "jobs/mnist-ddp.yaml,jobs/keras-mwms.yaml"


def per_worker_batch(job_file: str) -> int:
    import yaml
    command = yaml.safe_load((REPO / job_file).read_text())["spec"]["command"]
    if "--batch-size" in command:
        return int(command[command.index("--batch-size") + 1])
    return 64  # both example scripts' default


def from_log(run_dir: str, batch: int) -> Optional[float]:
    logs = sorted(Path(run_dir).glob("logs/attempt-*/worker-0.log"))
    if not logs:
        return None
    m = DONE.search(logs[-1].read_text(errors="replace"))
    if not m or float(m.group(2)) <= 0:
        return None
    steps, seconds, workers = int(m.group(1)), float(m.group(2)), int(m.group(3))
    return steps * batch * workers / seconds


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workers", default="1,2,4")
    p.add_argument("--jobs", default=DEFAULT_JOBS)
    p.add_argument("--no-append", action="store_true")
    args = p.parse_args()
    cores = len(os.sched_getaffinity(0))
    sections, failures = [], 0
    with tempfile.TemporaryDirectory(prefix="tandem-b5-") as runs:
        for job_file in args.jobs.split(","):
            name = Path(job_file).stem
            png = BENCH / f"b5_{name}.png"
            cmd = [sys.executable, "-m", "tandem", "bench", job_file, "--workers", args.workers,
                   "--runs-dir", runs, "-o", str(png)]
            print("$ " + " ".join(cmd[1:]), file=sys.stderr, flush=True)
            t0 = time.time()
            proc = subprocess.run(cmd, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO / "operator")},
                                  stdin=subprocess.DEVNULL, text=True, capture_output=True)
            print(proc.stdout[-4000:], proc.stderr[-4000:], sep="\n", file=sys.stderr)
            data_file = png.with_suffix(".json")
            if proc.returncode != 0 or not data_file.exists() or data_file.stat().st_mtime < t0:
                failures += 1
                sections.append(f"{job_file}: `tandem bench` exited {proc.returncode}; stderr tail:\n\n```\n"
                                f"{proc.stderr[-1500:]}\n```")
                if not data_file.exists() or data_file.stat().st_mtime < t0:
                    continue
            data = json.loads(data_file.read_text())
            batch = per_worker_batch(job_file)
            base_log = None
            rows = []
            for pt in data["points"]:
                thr, src = pt["throughput"], "metrics"
                if thr is None:
                    thr, src = from_log(pt["run_dir"], batch), "log"
                if pt["workers"] == 1 and thr:
                    base_log = thr
                eff = pt["efficiency"]
                if eff is None and thr and base_log:
                    eff = thr / (pt["workers"] * base_log)
                over = pt["workers"] > cores
                rows.append((
                    pt["workers"], "yes" if pt["succeeded"] else "FAILED",
                    "-" if thr is None else f"{thr:,.0f}" + (" (log)" if src == "log" else ""),
                    "-" if thr is None else f"{thr / pt['workers']:,.0f}",
                    "-" if eff is None else f"{eff:.0%}",
                    "-" if pt["step_p50"] is None else f"{pt['step_p50'] * 1000:.1f}",
                    f"{pt['wall_seconds']:.0f}",
                    f"OVERSUBSCRIBED: {pt['workers']} workers on {cores} cores" if over else "-",
                ))
            out = table(("workers", "ok", "samples/s", "per worker", "efficiency", "step p50 ms", "wall s", "note"), rows)
            print(f"\n{job_file}\n{out}")
            sections.append(f"`{job_file}` (unmodified; baseline: {data.get('baselineSource')}); plot "
                            f"`benchmarks/{png.name}`, figures `benchmarks/{data_file.name}`\n\n{out}")
    if not args.no_append:
        body = "\n".join([
            f"`tandem bench FILE --workers {args.workers}` per example, fresh runs dir, CPU only "
            f"({cores} cores: any count above {cores} oversubscribes, and those rows measure contention, "
            f"not scaling). Efficiency = throughput / (workers x 1-worker throughput).", "",
            *[s + "\n" for s in sections],
        ])
        append_results("B5 scaling", body, "benchmarks/b5_scaling.py")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
