"""B1: launcher overhead. The same training script under `tandem run` and under the launchers a user would run.

    "$(hack/bootstrap.sh)/bin/python" benchmarks/b1_launcher.py [--workloads small,compute] [--repeats 3] [--no-append]

Variants (each an N-worker run, N = --workers, of an unmodified example script, wrapped by
benchmarks/stamp.py, which stamps every printed line with the wall-clock time at which the
script printed it):

- pytorch/tandem:              `tandem run` of a DDP TrainingJob (workers N, procsPerWorker 1,
                               --set metrics.enabled=false), with Tandem's default threads
                               (tandem/local/threads.py). Tandem starts, per worker, `python -m
                               tandem.launch`, which runs torchrun as one node of N (static rendezvous).
- pytorch/torchrun-standalone: `torchrun --standalone --nproc-per-node=N`: what a user runs for N
                               co-located ranks (torchrun gives each OMP_NUM_THREADS=1 when N > 1).
- pytorch/torchrun-nodes:      Tandem's topology by hand: N `torchrun --nnodes=N --node-rank=i
                               --nproc-per-node=1 --rdzv-backend=static` processes, with the same
                               OMP_NUM_THREADS as Tandem gives its workers (torchrun sets none for one
                               process per node: left alone, the ranks oversubscribe the cores).
- tensorflow/tandem:           `tandem run` of a MultiWorkerMirrored TrainingJob, N workers.
- tensorflow/tf_config:        N processes started by hand, each with a hand-written TF_CONFIG.

Workloads (jobs/train_ddp.py's MLP; the TensorFlow variants run on the small one only):
- small:   128 -> 512 -> 10, 64 samples per rank per step: steps of a few ms, where launch and
           threading overheads show;
- compute: 2048 -> 8192 -> 10, 16 samples per rank per step: about 0.5 GFLOP per rank per step
           (tens of ms on one idle core), and a 67 MB gradient allreduce.

Measured per run: time to first step (from just before the launcher is started to the moment
rank/worker 0 prints its first progress line), steady throughput (global samples/s from the end of
the warm-up steps to the last step, rank 0's stamps), and wall time. Runs are interleaved (round r
runs every variant once, in a rotated order) and each figure is the median of the repeats; the
ratios are Tandem's over the best baseline's throughput, and Tandem's first step against each
torchrun variant's.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, append_results, loadavg, median, table

sys.path.insert(0, str(REPO / "operator"))
from tandem._sys.ports import free_ports
from tandem.local.threads import local_omp_threads, physical_cores

PY = sys.executable
STAMP = str(Path(__file__).resolve().parent / "stamp.py")
TARGET_RATIO = 0.99
TARGET_FIRST_STEP_DELTA = 0.5
STEP_LINE = re.compile(r"@@T (\d+\.\d+) (?:rank|worker) 0: step (\d+)/(\d+)")


@dataclass
class Run:
    variant: str
    first_step: float = float("nan")
    throughput: float = float("nan")
    wall: float = float("nan")
    ok: bool = False
    note: str = ""


@dataclass
class Workload:
    name: str
    steps: int
    warmup: int
    batch: int
    workers: int
    log_every: int = 10
    ddp_args: list[str] = field(default_factory=list)
    keras_args: list[str] = field(default_factory=list)

    def describe(self) -> str:
        return (f"{self.name}: MLP {' -> '.join(self.ddp_args[1::2])} -> 10, {self.batch} samples per rank per step, "
                f"{self.steps} steps, steady window steps {self.warmup}..{self.steps}, {self.workers} workers")


def workloads(names: list[str], workers: int, batch: int | None) -> list[Workload]:
    known = {
        "small": Workload("small", steps=200, warmup=40, batch=batch or 64, workers=workers,
                          ddp_args=["--features", "128", "--hidden", "512"],
                          keras_args=["--features", "128", "--hidden", "512"]),
        "compute": Workload("compute", steps=30, warmup=10, batch=batch or 16, workers=workers,
                            ddp_args=["--features", "2048", "--hidden", "8192", "--samples", "2048"]),
    }
    return [known[n] for n in names]


def same_threads_as_tandem(workers: int) -> str:
    """OMP_NUM_THREADS that `tandem run` gives each of `workers` one-process workers here."""
    return str(local_omp_threads(workers, physical_cores(os.sched_getaffinity(0))))


def ddp_command(w: Workload, ckpt: str) -> list[str]:
    return [STAMP, "jobs/train_ddp.py", "--steps", str(w.steps), "--log-every", str(w.log_every), "--checkpoint-every", "0",
            "--checkpoint-dir", ckpt, "--batch-size", str(w.batch), "--device", "cpu", *w.ddp_args]


def keras_command(w: Workload, ckpt: str) -> list[str]:
    return [STAMP, "jobs/train_keras.py", "--epochs", "1", "--steps-per-epoch", str(w.steps), "--log-every", str(w.log_every),
            "--checkpoint-dir", ckpt, "--batch-size", str(w.batch), *w.keras_args]


def job_file(tmp: Path, framework: str, command: list[str], workers: int) -> Path:
    """A TrainingJob like the examples in jobs/, with the stamped benchmark command; no thread
    setting of its own (Tandem's default policy applies)."""
    if framework == "pytorch":
        spec = {"framework": "pytorch", "strategy": "ddp", "image": "tandem/pytorch-worker:0.1.0",
                "workers": workers, "procsPerWorker": 1}
        name = "b1-ddp"
    else:
        spec = {"framework": "tensorflow", "strategy": "multi-worker-mirrored",
                "image": "tandem/tensorflow-worker:0.1.0", "workers": workers,
                "env": [{"name": "TF_CPP_MIN_LOG_LEVEL", "value": "2"}]}
        name = "b1-keras"
    doc = {"apiVersion": "tandem.dev/v1alpha1", "kind": "TrainingJob", "metadata": {"name": name},
           "spec": {**spec, "command": ["python", *command], "resources": {"cpu": "1", "memory": "2Gi"},
                    "runPolicy": {"backoffLimit": 0}}}
    path = tmp / f"{name}.json"  # JSON is YAML
    path.write_text(json.dumps(doc))
    return path


def base_env() -> dict[str, str]:
    """This checkout's Tandem (not whichever one the environment has installed), and no thread
    setting or distributed variable inherited from the shell: each launcher applies its own."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "operator"), os.environ.get("PYTHONPATH")]))}
    for k in list(env):
        if k.startswith("TANDEM_") or k in ("TF_CONFIG", "MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE",
                                            "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            del env[k]
    return env


def launch(variant: str, w: Workload, tmp: Path, run_no: int) -> tuple[list[list[str]], list[dict[str, str]]]:
    """argv and env of each process the variant starts (all started at once)."""
    ckpt = str(tmp / f"ckpt-{w.name}-{variant.replace('/', '-')}-{run_no}")
    env = base_env()
    framework, launcher = variant.split("/")
    n = w.workers
    command = ddp_command(w, ckpt) if framework == "pytorch" else keras_command(w, ckpt)
    if launcher == "tandem":
        job = job_file(tmp, framework, command, n)
        argv = [PY, "-m", "tandem", "run", str(job), "--runs-dir", str(tmp / "runs"),
                "--set", "metrics.enabled=false"]
        return [argv], [env]
    if launcher == "torchrun-nodes":
        port = free_ports(1)[0]
        argvs = [[PY, "-m", "torch.distributed.run", f"--nnodes={n}", f"--node-rank={i}", "--nproc-per-node=1",
                  "--rdzv-backend=static", "--master-addr=127.0.0.1", f"--master-port={port}", "--max-restarts=0",
                  *command] for i in range(n)]
        node_env = {**env, "OMP_NUM_THREADS": same_threads_as_tandem(n)}
        return argvs, [node_env] * n
    if launcher == "torchrun-standalone":
        return [[PY, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n}", "--max-restarts=0",
                 *command]], [env]
    if launcher == "tf_config":
        hosts = [f"127.0.0.1:{p}" for p in free_ports(n)]
        envs = [{**env, "TF_CONFIG": json.dumps({"cluster": {"worker": hosts}, "task": {"type": "worker", "index": i}})}
                for i in range(n)]
        return [[PY, *command] for _ in range(n)], envs
    raise ValueError(variant)


def run_once(variant: str, w: Workload, tmp: Path, run_no: int, timeout: float) -> Run:
    argvs, envs = launch(variant, w, tmp, run_no)
    log = tmp / f"log-{w.name}-{variant.replace('/', '-')}-{run_no}.txt"
    result = Run(variant)
    with log.open("w") as out:
        t0 = time.time()
        procs = [subprocess.Popen(a, env=e, cwd=REPO, stdout=out if i == 0 else subprocess.DEVNULL,
                                  stderr=subprocess.STDOUT if i == 0 else subprocess.DEVNULL,
                                  stdin=subprocess.DEVNULL, start_new_session=True)
                 for i, (a, e) in enumerate(zip(argvs, envs, strict=False))]
        codes = []
        try:
            for p in procs:
                codes.append(p.wait(timeout=max(1.0, t0 + timeout - time.time())))
        except subprocess.TimeoutExpired:
            result.note = f"timed out after {timeout:.0f}s"
        finally:  # timeout, Ctrl-C or SIGTERM: leave nothing running
            for p in procs:
                if p.poll() is None:
                    try:
                        os.killpg(p.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    p.wait()
        result.wall = time.time() - t0
    stamps: dict[int, float] = {}
    for line in log.read_text(errors="replace").splitlines():
        m = STEP_LINE.search(line)
        if m:
            stamps.setdefault(int(m.group(2)), float(m.group(1)))
    if codes and all(c == 0 for c in codes) and len(codes) == len(procs) and w.steps in stamps and stamps:
        result.ok = True
        result.first_step = stamps[min(stamps)] - t0
        start = stamps.get(w.warmup) or stamps[min(k for k in stamps if k >= w.warmup)]
        result.throughput = (w.steps - w.warmup) * w.batch * w.workers / (stamps[w.steps] - start)
    elif not result.note:
        result.note = f"exit codes {codes}, {len(stamps)} step lines; log {log}"
    return result


PYTORCH_VARIANTS = ("pytorch/tandem", "pytorch/torchrun-standalone", "pytorch/torchrun-nodes")
TENSORFLOW_VARIANTS = ("tensorflow/tandem", "tensorflow/tf_config")


def variants_of(w: Workload, wanted: list[str]) -> list[str]:
    """The TensorFlow script has no compute-bound model: it runs on the small workload only."""
    return [v for v in wanted if v.startswith("pytorch/") or w.name == "small"]


def run_rounds(ws: list[Workload], wanted: list[str], repeats: int, timeout: float,
               keep_logs: str | None) -> tuple[dict[tuple[str, str], list[Run]], list[str]]:
    """Every (workload, variant) once per round, in a rotated order; load average per round."""
    cells = [(w, v) for w in ws for v in variants_of(w, wanted)]
    runs: dict[tuple[str, str], list[Run]] = {(w.name, v): [] for w, v in cells}
    loads = [loadavg()]
    with tempfile.TemporaryDirectory(prefix="tandem-b1-") as tmpdir:
        tmp = Path(tmpdir)
        for r in range(repeats):
            for w, v in cells[r % len(cells):] + cells[:r % len(cells)]:
                res = run_once(v, w, tmp, r, timeout)
                runs[(w.name, v)].append(res)
                print(f"round {r + 1}/{repeats} {w.name:8s} {v:28s} first step {res.first_step:6.2f}s "
                      f"throughput {res.throughput:8.0f}/s wall {res.wall:6.2f}s "
                      f"{'ok' if res.ok else 'FAILED ' + res.note}  (load {loadavg()})", file=sys.stderr, flush=True)
                if not res.ok:
                    print((tmp / f"log-{w.name}-{v.replace('/', '-')}-{r}.txt").read_text()[-3000:], file=sys.stderr)
            loads.append(loadavg())
        if keep_logs:
            import shutil
            shutil.copytree(tmp, keep_logs, dirs_exist_ok=True)
    return runs, loads


def spread(values: list[float]) -> str:
    """(max - min) / median: how far apart a variant's own runs are."""
    return f"{(max(values) - min(values)) / median(values) * 100:.0f} %" if len(values) > 1 else "-"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--workloads", default="small,compute", help="small, compute or both")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=None, help="per rank; default: the workload's (64 small, 16 compute)")
    p.add_argument("--timeout", type=float, default=240.0, help="per run")
    p.add_argument("--variants", default=",".join(PYTORCH_VARIANTS + TENSORFLOW_VARIANTS))
    p.add_argument("--no-append", action="store_true")
    p.add_argument("--keep-logs", metavar="DIR", help="copy every run's log here")
    args = p.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))

    ws = workloads(args.workloads.split(","), args.workers, args.batch_size)
    runs, loads = run_rounds(ws, args.variants.split(","), args.repeats, args.timeout, args.keep_logs)

    def med(key: tuple[str, str], attr: str) -> float:
        return median([getattr(x, attr) for x in runs.get(key, []) if x.ok])

    rows = []
    for (wname, v), rs in runs.items():
        ok = [x for x in rs if x.ok]
        rows.append((wname, v, f"{len(ok)}/{len(rs)}", f"{med((wname, v), 'first_step'):.2f}",
                     f"{med((wname, v), 'throughput'):,.0f}", spread([x.throughput for x in ok]),
                     f"{med((wname, v), 'wall'):.2f}", " ".join(f"{x.throughput:.0f}" for x in ok)))
    results = table(("workload", "variant", "ok runs", "to first progress line s (median)", "steady samples/s (median)",
                     "spread", "wall s (median)", "throughput of each run"), rows)

    ratio_rows = []
    for w in ws:
        for framework, baselines in (("pytorch", PYTORCH_VARIANTS[1:]), ("tensorflow", TENSORFLOW_VARIANTS[1:])):
            tandem = (w.name, f"{framework}/tandem")
            present = [(w.name, b) for b in baselines if (w.name, b) in runs]
            if tandem not in runs or not present:
                continue
            best = max(present, key=lambda k: med(k, "throughput"))
            ratio = med(tandem, "throughput") / med(best, "throughput")
            for b in present:
                delta = med(tandem, "first_step") - med(b, "first_step")
                ratio_b = med(tandem, "throughput") / med(b, "throughput")
                ratio_rows.append((
                    w.name, f"{tandem[1]} vs {b[1]}" + (" (best)" if b == best else ""), f"{ratio_b:.3f}",
                    ("met" if ratio >= TARGET_RATIO else "MISSED") if b == best else "-",
                    f"{delta:+.2f}", "met" if delta <= TARGET_FIRST_STEP_DELTA else "MISSED",
                    f"{med(tandem, 'wall') - med(b, 'wall'):+.2f}"))
    ratios = table(("workload", "comparison", "throughput ratio", f"vs best >= {TARGET_RATIO}",
                    "first-step delta s", f"<= +{TARGET_FIRST_STEP_DELTA} s", "wall delta s"), ratio_rows)
    print(results)
    print()
    print(ratios)
    if not args.no_append:
        body = "\n".join([
            "Workloads: jobs/train_ddp.py (and jobs/train_keras.py for the TensorFlow rows), unmodified, wrapped by "
            "benchmarks/stamp.py, CPU, a progress line every 10 steps; "
            + "; ".join(w.describe() for w in ws) + ". "
            f"Tandem's default threads (tandem/local/threads.py): OMP_NUM_THREADS={same_threads_as_tandem(args.workers)} "
            f"per worker here, given to torchrun-nodes too. Median of {args.repeats} interleaved rounds; 'spread' is "
            f"(max - min) / median of a variant's runs. Tandem with `--set metrics.enabled=false`. Load average "
            f"(1/5/15 min) before and after each round: {' -> '.join(loads)}.",
            "",
            results, "", ratios,
        ])
        append_results("B1 launcher overhead (equal-thread baselines)", body,
                       f"benchmarks/b1_launcher.py --workloads {args.workloads} --repeats {args.repeats} "
                       f"--workers {args.workers}")
    return 0 if all(x.ok for rs in runs.values() for x in rs) else 1


if __name__ == "__main__":
    sys.exit(main())
