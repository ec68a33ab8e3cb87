"""B1: launcher overhead. The same training script under `tandem run` and under the bare launcher.

    "$(hack/bootstrap.sh)/bin/python" benchmarks/b1_launcher.py [--repeats 5] [--steps 300] [--no-append]

Variants (each a 2-worker run of an unmodified example script, wrapped by benchmarks/stamp.py,
which stamps every printed line with the wall-clock time at which the script printed it):

- pytorch/tandem:      `tandem run` of a DDP TrainingJob (workers 2, procsPerWorker 1,
                       --set metrics.enabled=false). Tandem starts, per worker, `python -m
                       tandem.launch`, which runs torchrun as one node of two (static rendezvous).
- pytorch/torchrun-2n: the fair baseline: the same topology by hand, two plain `torchrun
                       --nnodes=2 --node-rank=i --nproc-per-node=1 --rdzv-backend=static
                       --master-addr=127.0.0.1` processes.
- pytorch/torchrun-1n: reference only: one `torchrun --standalone --nproc-per-node=2` (one agent
                       for both ranks: less to start, not what Tandem does for 2 workers).
- tensorflow/tandem:   `tandem run` of a MultiWorkerMirrored TrainingJob, 2 workers.
- tensorflow/tf_config: two processes started by hand, each with a hand-written TF_CONFIG.

Measured per run: time to first step (from just before the launcher is started to the moment
rank/worker 0 prints step 1), steady throughput (global samples/s from the end of the warm-up
steps to the last step, rank 0's stamps), and wall time. Runs are interleaved (round r runs
every variant once, in a rotated order) and each figure is the median of the repeats; the
ratios are tandem over its fair baseline.
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
    steps: int
    warmup: int
    batch: int
    log_every: int = 10
    ddp_args: list[str] = field(default_factory=list)
    keras_args: list[str] = field(default_factory=list)


def ddp_command(w: Workload, ckpt: str) -> list[str]:
    return [STAMP, "jobs/train_ddp.py", "--steps", str(w.steps), "--log-every", str(w.log_every), "--checkpoint-every", "0",
            "--checkpoint-dir", ckpt, "--batch-size", str(w.batch), "--device", "cpu", *w.ddp_args]


def keras_command(w: Workload, ckpt: str) -> list[str]:
    return [STAMP, "jobs/train_keras.py", "--epochs", "1", "--steps-per-epoch", str(w.steps), "--log-every", str(w.log_every),
            "--checkpoint-dir", ckpt, "--batch-size", str(w.batch), *w.keras_args]


def job_file(tmp: Path, framework: str, command: list[str], extra_env: dict[str, str]) -> Path:
    """A TrainingJob like the examples in jobs/, with the stamped benchmark command."""
    if framework == "pytorch":
        spec = {"framework": "pytorch", "strategy": "ddp", "image": "tandem/pytorch-worker:0.1.0",
                "workers": 2, "procsPerWorker": 1}
        name = "b1-ddp"
    else:
        spec = {"framework": "tensorflow", "strategy": "multi-worker-mirrored",
                "image": "tandem/tensorflow-worker:0.1.0", "workers": 2,
                "env": [{"name": "TF_CPP_MIN_LOG_LEVEL", "value": "2"}]}
        name = "b1-keras"
    if extra_env:
        spec["env"] = spec.get("env", []) + [{"name": k, "value": v} for k, v in extra_env.items()]
        name += "-omp1"
    doc = {"apiVersion": "tandem.dev/v1alpha1", "kind": "TrainingJob", "metadata": {"name": name},
           "spec": {**spec, "command": ["python", *command], "resources": {"cpu": "1", "memory": "2Gi"},
                    "runPolicy": {"backoffLimit": 0}}}
    path = tmp / f"{name}.json"  # JSON is YAML
    path.write_text(json.dumps(doc))
    return path


def base_env() -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    for k in list(env):
        if k.startswith("TANDEM_") or k in ("TF_CONFIG", "MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE"):
            del env[k]
    return env


def launch(variant: str, w: Workload, tmp: Path, run_no: int) -> tuple[list[list[str]], list[dict[str, str]]]:
    """argv and env of each process the variant starts (all started at once)."""
    ckpt = str(tmp / f"ckpt-{variant.replace('/', '-')}-{run_no}")
    env = base_env()
    framework, launcher = variant.split("/")
    extra = {}
    if launcher.endswith("-omp1"):  # diagnosis: one OpenMP thread per rank, as torchrun sets for nproc > 1
        launcher = launcher[: -len("-omp1")]
        extra = {"OMP_NUM_THREADS": "1"}
        env = {**env, **extra}
    command = ddp_command(w, ckpt) if framework == "pytorch" else keras_command(w, ckpt)
    if launcher == "tandem":
        job = job_file(tmp, framework, command, extra)
        argv = [PY, "-m", "tandem", "run", str(job), "--runs-dir", str(tmp / "runs"),
                "--set", "metrics.enabled=false"]
        return [argv], [env]
    if launcher == "torchrun-2n":
        port = free_ports(1)[0]
        argvs = [[PY, "-m", "torch.distributed.run", "--nnodes=2", f"--node-rank={i}", "--nproc-per-node=1",
                  "--rdzv-backend=static", "--master-addr=127.0.0.1", f"--master-port={port}", "--max-restarts=0",
                  *command] for i in range(2)]
        return argvs, [env, env]
    if launcher == "torchrun-1n":
        return [[PY, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "--max-restarts=0",
                 *command]], [env]
    if launcher == "tf_config":
        hosts = [f"127.0.0.1:{p}" for p in free_ports(2)]
        envs = [{**env, "TF_CONFIG": json.dumps({"cluster": {"worker": hosts}, "task": {"type": "worker", "index": i}})}
                for i in range(2)]
        return [[PY, *command], [PY, *command]], envs
    raise ValueError(variant)


def run_once(variant: str, w: Workload, tmp: Path, run_no: int, timeout: float) -> Run:
    argvs, envs = launch(variant, w, tmp, run_no)
    log = tmp / f"log-{variant.replace('/', '-')}-{run_no}.txt"
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
        result.throughput = (w.steps - w.warmup) * w.batch * 2 / (stamps[w.steps] - start)
    elif not result.note:
        result.note = f"exit codes {codes}, {len(stamps)} step lines; log {log}"
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps", type=int, default=200, help="training steps per run")
    p.add_argument("--warmup", type=int, default=40, help="steps before the steady-throughput window")
    p.add_argument("--batch-size", type=int, default=64, help="per worker")
    p.add_argument("--timeout", type=float, default=240.0, help="per run")
    p.add_argument("--variants", default="pytorch/tandem,pytorch/torchrun-2n,pytorch/torchrun-1n,"
                                         "pytorch/tandem-omp1,pytorch/torchrun-2n-omp1,"
                                         "tensorflow/tandem,tensorflow/tf_config")
    p.add_argument("--no-append", action="store_true")
    p.add_argument("--keep-logs", metavar="DIR", help="copy every run's log here")
    args = p.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))

    w = Workload(steps=args.steps, warmup=args.warmup, batch=args.batch_size,
                 ddp_args=["--features", "128", "--hidden", "512"],
                 keras_args=["--features", "128", "--hidden", "512"])
    variants = args.variants.split(",")
    runs: dict[str, list[Run]] = {v: [] for v in variants}
    loads = [loadavg()]
    with tempfile.TemporaryDirectory(prefix="tandem-b1-") as tmpdir:
        tmp = Path(tmpdir)
        for r in range(args.repeats):
            order = variants[r % len(variants):] + variants[:r % len(variants)]
            for v in order:
                res = run_once(v, w, tmp, r, args.timeout)
                runs[v].append(res)
                print(f"round {r + 1}/{args.repeats} {v:22s} first step {res.first_step:6.2f}s "
                      f"throughput {res.throughput:8.0f}/s wall {res.wall:6.2f}s "
                      f"{'ok' if res.ok else 'FAILED ' + res.note}  (load {loadavg()})", file=sys.stderr, flush=True)
                if not res.ok:
                    print((tmp / f"log-{v.replace('/', '-')}-{r}.txt").read_text()[-3000:], file=sys.stderr)
            loads.append(loadavg())
        if args.keep_logs:
            import shutil
            shutil.copytree(tmp, args.keep_logs, dirs_exist_ok=True)

    def med(v: str, attr: str) -> float:
        return median([getattr(x, attr) for x in runs[v] if x.ok])

    rows = []
    for v in variants:
        ok = [x for x in runs[v] if x.ok]
        rows.append((v, f"{len(ok)}/{len(runs[v])}", f"{med(v, 'first_step'):.2f}",
                     f"{med(v, 'throughput'):,.0f}", f"{med(v, 'wall'):.2f}",
                     " ".join(f"{x.throughput:.0f}" for x in ok)))
    results = table(("variant", "ok runs", f"to step {w.log_every} s (median)", "steady samples/s (median)",
                     "wall s (median)", "throughput of each run"), rows)

    pairs = [("pytorch/tandem", "pytorch/torchrun-2n"), ("pytorch/tandem", "pytorch/torchrun-1n"),
             ("pytorch/tandem-omp1", "pytorch/torchrun-2n-omp1"), ("pytorch/tandem-omp1", "pytorch/torchrun-1n"),
             ("tensorflow/tandem", "tensorflow/tf_config")]
    ratio_rows = []
    for a, b in pairs:
        if a not in runs or b not in runs:
            continue
        ratio = med(a, "throughput") / med(b, "throughput")
        delta = med(a, "first_step") - med(b, "first_step")
        fair = b != "pytorch/torchrun-1n" and not a.endswith("-omp1")
        ratio_rows.append((
            f"{a} vs {b}" + ("" if fair else " (reference)"), f"{ratio:.3f}",
            ("met" if ratio >= TARGET_RATIO else "MISSED") if fair else "-",
            f"{delta:+.2f}", ("met" if delta <= TARGET_FIRST_STEP_DELTA else "MISSED") if fair else "-",
            f"{med(a, 'wall') - med(b, 'wall'):+.2f}"))
    ratios = table(("comparison", "throughput ratio", f">= {TARGET_RATIO}",
                    "first-step delta s", f"<= +{TARGET_FIRST_STEP_DELTA} s", "wall delta s"), ratio_rows)
    print(results)
    print()
    print(ratios)
    if not args.no_append:
        body = "\n".join([
            f"Workload: jobs/train_ddp.py and jobs/train_keras.py, unmodified, wrapped by benchmarks/stamp.py; "
            f"{args.steps} steps, {args.batch_size} samples per worker per step, MLP 128-512-10, "
            f"2 workers, CPU; a progress line every {w.log_every} steps; steady window steps {args.warmup}..{args.steps} "
            f"(rank 0's stamps). Median of {args.repeats} interleaved rounds. Tandem with "
            f"`--set metrics.enabled=false`. Load average (1/5/15 min) before and after each round: "
            f"{' -> '.join(loads)}.",
            "",
            results, "", ratios,
        ])
        append_results("B1 launcher overhead", body, "benchmarks/b1_launcher.py")
    return 0 if all(x.ok for rs in runs.values() for x in rs) else 1


if __name__ == "__main__":
    sys.exit(main())
