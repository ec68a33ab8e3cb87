"""B1's start-up, in CPU seconds: what `tandem run` costs before a worker's script starts.

    "$(hack/bootstrap.sh)/bin/python" benchmarks/b1_startup.py [--repeats 5] [--before COMMIT] [--no-append]

Wall-clock start-up on a shared machine moves with everyone else's load; CPU time (user + system of
the whole process tree, every level waits for its children) moves far less, and on an idle host
with a core per process the serial part of it is the wall-clock delay. Two measurements, runs
interleaved, medians:

- import: `tandem run`'s import path (`tandem.cli.run`, `tandem.api`, `tandem.local.backend`), in a
  fresh interpreter; with --before, also the same for the tree of COMMIT (git archive), for a
  before/after comparison;
- start: 2 workers of a no-op script (it prints the time and exits) under `tandem run`
  (metrics off), `torchrun --standalone --nproc-per-node=2`, and two torchrun nodes (static
  rendezvous) with Tandem's threads: CPU seconds of the whole tree, and wall seconds from the start
  to the first worker's script printing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, append_results, loadavg, median, table

sys.path.insert(0, str(REPO / "operator"))
from tandem._sys.ports import free_ports
from tandem.local.threads import local_omp_threads, physical_cores

PY = sys.executable
IMPORT_PATH = "import tandem.cli.run, tandem.api, tandem.local.backend"
NOOP = "import time; print('T', time.time(), flush=True)\n"
T_LINE = re.compile(r"T (\d{10}\.\d+)")  # anywhere: tandem prefixes "[worker i] ", ranks' lines may interleave


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_tree(argvs: list[list[str]], env: dict[str, str]) -> tuple[float, float, float]:
    """CPU seconds, seconds to the first script's print, wall seconds of the processes in `argvs`."""
    cpu0, t0 = children_cpu(), time.time()
    procs = [subprocess.Popen(a, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for a in argvs]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    wall, cpu = time.time() - t0, children_cpu() - cpu0
    stamps = [float(t) for out in outputs for t in T_LINE.findall(out)]
    if any(p.returncode for p in procs) or not stamps:
        raise SystemExit(f"{argvs[0][:6]} failed:\n{outputs[0][-3000:]}")
    return cpu, min(stamps) - t0, wall


def tree_env(operator_dir: Path, threads: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TANDEM_") and k != "OMP_NUM_THREADS"}
    env["PYTHONPATH"] = str(operator_dir)
    if threads:
        env["OMP_NUM_THREADS"] = threads
    return env


def extract(commit: str, into: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(REPO), "archive", commit, "operator"], capture_output=True, check=True)
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into / "operator"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--before", metavar="COMMIT", help="also measure the import path of this commit's tree")
    p.add_argument("--no-append", action="store_true")
    args = p.parse_args()
    loads = [loadavg()]
    with tempfile.TemporaryDirectory(prefix="tandem-b1-start-") as tmpdir:
        tmp = Path(tmpdir)
        trees = {"this checkout": REPO / "operator"}
        if args.before:
            trees[f"before ({args.before})"] = extract(args.before, tmp / "before")
        script = tmp / "noop.py"
        script.write_text(NOOP)
        job = tmp / "start.json"
        job.write_text(json.dumps({
            "apiVersion": "tandem.dev/v1alpha1", "kind": "TrainingJob", "metadata": {"name": "start"},
            "spec": {"framework": "pytorch", "strategy": "ddp", "image": "tandem/pytorch-worker:0.1.0", "workers": 2,
                     "command": ["python", str(script)], "runPolicy": {"backoffLimit": 0}}}))
        threads = str(local_omp_threads(2, physical_cores(os.sched_getaffinity(0))))

        def starts(tree: Path) -> dict[str, tuple[list[list[str]], dict[str, str]]]:
            port = free_ports(1)[0]
            nodes = [[PY, "-m", "torch.distributed.run", "--nnodes=2", f"--node-rank={i}", "--nproc-per-node=1",
                      "--rdzv-backend=static", "--master-addr=127.0.0.1", f"--master-port={port}", str(script)]
                     for i in range(2)]
            return {
                "tandem run": ([[PY, "-m", "tandem", "run", str(job), "--runs-dir", str(tmp / "runs"),
                                 "--set", "metrics.enabled=false"]], tree_env(tree, None)),
                "torchrun --standalone": ([[PY, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                                            str(script)]], tree_env(tree, None)),
                "torchrun-nodes": (nodes, tree_env(tree, threads)),
            }

        imports: dict[str, list[float]] = {name: [] for name in trees}
        runs: dict[str, list[tuple[float, float, float]]] = {}
        for r in range(args.repeats):
            for name, tree in (list(trees.items()) if r % 2 == 0 else list(trees.items())[::-1]):
                imports[name].append(run_tree([[PY, "-c", IMPORT_PATH + "; print('T 0000000000.0')"]], tree_env(tree, None))[0])
            cells = list(starts(trees["this checkout"]).items())
            for name, (argvs, env) in cells[r % len(cells):] + cells[:r % len(cells)]:
                runs.setdefault(name, []).append(run_tree(argvs, env))
            loads.append(loadavg())
            print(f"round {r + 1}/{args.repeats} done (load {loads[-1]})", file=sys.stderr, flush=True)
    bare = run_tree([[PY, "-c", "print('T 0000000000.0')"]], tree_env(REPO / "operator", None))[0]
    import_rows = [(name, f"{median(v):.3f}", " ".join(f"{x:.2f}" for x in v)) for name, v in imports.items()]
    start_rows = [(name, f"{median([x[0] for x in v]):.2f}", f"{median([x[1] for x in v]):.2f}",
                   " ".join(f"{x[0]:.2f}" for x in v), " ".join(f"{x[1]:.2f}" for x in v)) for name, v in runs.items()]
    text = "\n".join([
        table(("tree", "CPU s to import tandem run's path (median)", "each run"), import_rows),
        f"(a bare interpreter: {bare:.3f} CPU s)", "",
        table(("2 workers of a no-op script under", "CPU s, whole tree (median)", "to script start s (median)",
               "CPU s each run", "to script start s each run"), start_rows),
    ])
    print(text)
    if not args.no_append:
        body = (f"Median of {args.repeats} interleaved rounds. Import path: `{IMPORT_PATH}`. torchrun-nodes with "
                f"OMP_NUM_THREADS={threads}, as Tandem gives. Load average (1/5/15 min) before and after each round: "
                f"{' -> '.join(loads)}.\n\n" + text)
        append_results("B1 start-up CPU", body, "benchmarks/b1_startup.py --repeats "
                       f"{args.repeats}" + (f" --before {args.before}" if args.before else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
