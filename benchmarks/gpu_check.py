"""GPU check of `tandem run` (docs/benchmarks.md); run it through benchmarks/gpu_check.sh, which
prepares Python on a host without network. Its header says what is checked and how to run it.

Why each check is done the way it is:
- (a) compares the training loop's own time ("done: N steps in T s", printed by
  jobs/train_ddp.py's rank 0), not the command's wall time, which also holds start-up; both
  are printed. The runs alternate Tandem / torchrun so that drift of the host (clocks, other
  load) falls on both. The bare torchrun sees the host as a user's would: every GPU, no Tandem
  on its PYTHONPATH (so train_ddp.py's metrics hook is off there).
- (b) and the refusals of (c) ask for one more GPU than the host lists, so they hold on hosts
  with any number of GPUs.
- (c) runs a probe of its own through Tandem, not the MLP: it shows which GPUs each process
  sees, that it took its own one (cuda:LOCAL_RANK) and that NCCL all-reduces across them.
- Timings are figures, never pass/fail (docs/benchmarks.md): the exit code is 1 only when a
  run failed or a refusal or device assignment was wrong.
- `--dry` runs all of it on CPU against a fake nvidia-smi that lists 2 GPUs: Tandem hands
  those out (CUDA_VISIBLE_DEVICES) though no GPU is there, so everything but CUDA runs.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parent.parent
JOB = REPO / "jobs" / "mnist-ddp.yaml"
NAME = "gpu-check"
REPEATS = 3
#: A compute-bound MLP, so that the GPU sets the pace: 2048 -> 8192 -> 10, batch 2048, 400 steps.
#: No checkpoints (each would write 128 MB) and few log lines, so the loop is the GPU's work.
MLP = ["--features", "2048", "--hidden", "8192", "--classes", "10", "--batch-size", "2048",
       "--samples", "16384", "--steps", "400", "--checkpoint-every", "0", "--log-every", "100"]
#: The same loop, small enough for a CPU (--dry).
DRY_MLP = ["--features", "64", "--hidden", "256", "--classes", "10", "--batch-size", "256",
           "--samples", "2048", "--steps", "30", "--checkpoint-every", "0", "--log-every", "10"]
DONE = re.compile(r"done: (\d+) steps in ([0-9.]+)s")
SMI_GPU = re.compile(r"^GPU (\d+):")
#: Run by every process of (c): which GPUs it sees, which it took, and an all-reduce over them.
PROBE = """\
import os, torch, torch.distributed as dist
rank = int(os.environ["LOCAL_RANK"])
cuda = torch.cuda.is_available()
if cuda:
    torch.cuda.set_device(rank)
dist.init_process_group("nccl" if cuda else "gloo")
one = torch.ones(1, device=f"cuda:{rank}" if cuda else "cpu")
dist.all_reduce(one)
name = torch.cuda.get_device_name(rank).replace(" ", "_") if cuda else "-"
print("probe", rank, os.environ.get("CUDA_VISIBLE_DEVICES"), torch.cuda.device_count(), int(one.item()), name,
      flush=True)
dist.destroy_process_group()
"""


@dataclass
class Row:
    check: str
    measured: str
    target: str
    passed: Optional[bool]  # None: measured only


@dataclass
class Host:
    dry: bool
    env: dict[str, str]
    gpus: int
    listing: str
    log: list[str]

    @property
    def device(self) -> str:
        return "cpu" if self.dry else "cuda"


def count_gpus(env: dict[str, str]) -> tuple[int, str]:
    """The host's GPUs as `nvidia-smi -L` lists them (Tandem finds them the same way, but this
    script counts on its own, so that the refusal's number is checked, not repeated)."""
    smi = shutil.which("nvidia-smi", path=env.get("PATH"))
    if smi is None:
        return 0, "(no nvidia-smi)"
    done = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30, env=env, check=False)
    return sum(1 for line in done.stdout.splitlines() if SMI_GPU.match(line)), done.stdout.strip()


def fake_smi(folder: Path, gpus: int) -> Path:
    """An nvidia-smi that lists `gpus` H100s, for --dry."""
    smi = folder / "nvidia-smi"
    lines = "".join(f"GPU {i}: NVIDIA H100 80GB HBM3 (UUID: GPU-dry-{i})\\n" for i in range(gpus))
    smi.write_text(f"#!/bin/sh\nprintf '{lines}'\n")
    smi.chmod(0o755)
    return smi


def run(host: Host, title: str, argv: list[str], env: Optional[dict[str, str]] = None,
        timeout: float = 180) -> tuple[subprocess.CompletedProcess[str], float]:
    """One command to its end, its output kept in the log; returns it and its wall seconds."""
    started = time.monotonic()
    try:
        done = subprocess.run(argv, cwd=REPO, env=env or host.env, capture_output=True, text=True, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired as expired:
        out = expired.stdout.decode() if isinstance(expired.stdout, bytes) else (expired.stdout or "")
        err = expired.stderr.decode() if isinstance(expired.stderr, bytes) else (expired.stderr or "")
        done = subprocess.CompletedProcess(argv, 124, out, err + f"\n(timed out after {timeout:.0f}s)")
    seconds = time.monotonic() - started
    host.log += [f"=== {title}: exit {done.returncode} in {seconds:.1f}s", " ".join(argv),
                 "--- stdout", done.stdout, "--- stderr", done.stderr]
    return done, seconds


def tandem_run(host: Host, runs: Path, *sets: str, workers: int = 1) -> list[str]:
    """`tandem run` of the example DDP job, with `sets` as --set overrides."""
    metrics = importlib.util.find_spec("ray") is not None
    argv = [sys.executable, "-m", "tandem", "run", str(JOB), "--runs-dir", str(runs), "--workers", str(workers),
            "--set", f"metadata.name={NAME}", "--set", f"metrics.enabled={str(metrics).lower()}",
            "--set", "runPolicy.backoffLimit=0"]
    for override in sets:
        argv += ["--set", override]
    return argv


def loop_time(output: str) -> Optional[float]:
    found = DONE.findall(output)
    return float(found[-1][1]) if found else None


def check_loop(host: Host, work: Path) -> list[Row]:
    """(a) 1 GPU worker under Tandem against bare torchrun: the training loop's time, median of 3."""
    args = [*(DRY_MLP if host.dry else MLP), "--device", host.device]
    bare_env = dict(host.env)
    bare_env["PYTHONPATH"] = os.pathsep.join(p for p in bare_env.get("PYTHONPATH", "").split(os.pathsep)
                                             if p and Path(p).resolve() != REPO / "operator")
    times: dict[str, list[float]] = {"tandem": [], "torchrun": []}
    walls: dict[str, list[float]] = {"tandem": [], "torchrun": []}
    failures: list[str] = []

    def record(variant: str, i: int, done: subprocess.CompletedProcess[str], wall: float) -> None:
        seconds = loop_time(done.stdout + done.stderr)
        if done.returncode != 0 or seconds is None:
            failures.append(f"{variant} {i + 1}")
            return
        times[variant].append(seconds)
        walls[variant].append(wall)

    for i in range(REPEATS):
        command = "spec.command=" + json.dumps(["python", "jobs/train_ddp.py", *args])
        tandem, wall = run(host, f"(a) tandem {i + 1}",
                           tandem_run(host, work / f"runs-a{i}", "resources.gpus=1", "procsPerWorker=1", command))
        record("tandem", i, tandem, wall)
        bare, wall = run(host, f"(a) torchrun {i + 1}", [
            sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "1",
            "jobs/train_ddp.py", *args, "--checkpoint-dir", str(work / f"bare-checkpoints-{i}")], env=bare_env)
        record("torchrun", i, bare, wall)
    if failures:
        return [Row("(a) 1 GPU worker: tandem vs torchrun loop time", f"runs failed: {', '.join(failures)} (log)",
                    "all runs succeed", False)]
    tandem_s, bare_s = statistics.median(times["tandem"]), statistics.median(times["torchrun"])
    ratio = tandem_s / bare_s
    what = "CPU, --dry" if host.dry else "1 GPU"
    return [
        Row(f"(a) {what}: loop time, tandem run (median of {REPEATS})",
            f"{tandem_s:.1f} s (runs {', '.join(f'{t:.1f}' for t in times['tandem'])}; "
            f"wall {statistics.median(walls['tandem']):.1f} s)", "-", None),
        Row(f"(a) {what}: loop time, torchrun --standalone (median of {REPEATS})",
            f"{bare_s:.1f} s (runs {', '.join(f'{t:.1f}' for t in times['torchrun'])}; "
            f"wall {statistics.median(walls['torchrun']):.1f} s)", "-", None),
        Row(f"(a) {what}: loop-time ratio tandem / torchrun",
            f"{ratio:.3f} (loop times print to 0.1 s): target {'met' if ratio <= 1.01 else 'not met'}",
            "<= 1.01 (a figure, not a pass/fail check)", None),
    ]


def check_refusal(host: Host, work: Path) -> list[Row]:
    """(b) one more worker with resources.gpus=1 than the host has GPUs: refused, one line, nothing started."""
    workers = host.gpus + 1
    runs = work / "runs-b"
    done, seconds = run(host, "(b) refusal", tandem_run(host, runs, "resources.gpus=1", workers=workers))
    lines = done.stderr.strip().splitlines()
    line = lines[0] if lines else "(nothing on stderr)"
    passed = (done.returncode == 1 and len(lines) == 1 and f"needs {workers} GPUs" in line
              and f"has {host.gpus} " in line and "--set resources.gpus=0" in line and not runs.exists())
    return [Row(f"(b) {workers} workers x resources.gpus=1 on {host.gpus} GPU(s): refused",
                f"exit {done.returncode} after {seconds:.1f} s, {len(lines)} line(s), "
                f"run dir {'created' if runs.exists() else 'not created'}: `{line}`",
                "exit 1, one line naming need, have and --set resources.gpus=0; nothing started", passed)]


def check_procs_per_worker(host: Host, work: Path) -> list[Row]:
    """(c) one worker, procsPerWorker = resources.gpus = up to 2: each process its own GPU, NCCL
    all-reduce; and procsPerWorker one beyond the host's GPUs refused."""
    rows: list[Row] = []
    procs = min(host.gpus, 2)
    if procs:
        command = "spec.command=" + json.dumps(["python", "-c", PROBE])
        done, seconds = run(host, f"(c) procsPerWorker={procs}",
                            tandem_run(host, work / "runs-c", f"resources.gpus={procs}", f"procsPerWorker={procs}",
                                       command))
        probes = sorted(line.split("probe ", 1)[1].split() for line in (done.stdout + done.stderr).splitlines()
                        if "probe " in line and "print(" not in line)
        visible = ",".join(str(i) for i in range(procs))
        expected_count = "0" if host.dry else str(procs)
        passed = (done.returncode == 0 and [p[0] for p in probes] == [str(r) for r in range(procs)]
                  and all(p[1] == visible and p[2] == expected_count and p[3] == str(procs) for p in probes))
        seen = "; ".join(f"rank {p[0]}: CUDA_VISIBLE_DEVICES={p[1]}, {p[2]} visible, all-reduce {p[3]}, {p[4]}"
                         for p in probes) or "no probe output (log)"
        rows.append(Row(f"(c) 1 worker, procsPerWorker={procs}, resources.gpus={procs}"
                        + (" (CPU, --dry: gloo)" if host.dry else ": NCCL"),
                        f"exit {done.returncode} in {seconds:.1f} s; {seen}",
                        f"each rank sees GPUs {visible}, takes cuda:LOCAL_RANK, all-reduce = {procs}", passed))
    over = host.gpus + 1
    done, _ = run(host, f"(c) procsPerWorker={over} refusal",
                  tandem_run(host, work / "runs-c-over", f"resources.gpus={over}", f"procsPerWorker={over}"))
    lines = done.stderr.strip().splitlines()
    rows.append(Row(f"(c) procsPerWorker={over}, resources.gpus={over} on {host.gpus} GPU(s): refused",
                    f"exit {done.returncode}: `{lines[0] if lines else ''}`", f"exit 1, needs {over}, has {host.gpus}",
                    done.returncode == 1 and len(lines) == 1 and f"needs {over} GPUs" in lines[0]))
    return rows


def check_gpu_utilisation(host: Host, work: Path) -> list[Row]:
    """(utilisation) GPU utilisation through NVML, as tandem.metrics.gpu reads it."""
    if host.dry:
        return [Row("(utilisation) GPU utilisation through NVML", "skipped (--dry: no GPU)", "-", None)]
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_util_check.py")], cwd=REPO, env=host.env,
                          capture_output=True, text=True, timeout=120, check=False)
    host.log.append(f"$ gpu_util_check.py (exit {done.returncode})\n{done.stdout}{done.stderr}")
    figures = (done.stdout.strip().splitlines() or [""])[-1]
    verdict = {0: True, 1: False}.get(done.returncode)  # 2: no NVML or GPU here: measured nothing
    return [Row("(utilisation) GPU utilisation through NVML (benchmarks/gpu_util_check.py)",
                f"exit {done.returncode}: {figures[:400]}",
                "GPU count and memory total as torch sees them; use under a matmul loop well above idle", verdict)]


def table(rows: list[Row]) -> list[str]:
    lines = ["| check | measured | target | passed |", "| --- | --- | --- | --- |"]
    for row in rows:
        verdict = "-" if row.passed is None else ("yes" if row.passed else "NO")
        lines.append(f"| {row.check} | {row.measured.replace('|', '/')} | {row.target} | {verdict} |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description="GPU check of tandem run; see gpu_check.sh")
    parser.add_argument("--dry", action="store_true", help="on CPU, with a fake nvidia-smi listing 2 GPUs")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}  # the whole host
    env["PYTHONUNBUFFERED"] = "1"
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as scratch:
        work = Path(scratch)
        if args.dry:
            fake_smi(work, 2)
            env["PATH"] = f"{work}{os.pathsep}{env.get('PATH', '')}"
        gpus, listing = count_gpus(env)
        host = Host(args.dry, env, gpus, listing, [])
        started = time.monotonic()
        print(f"gpu_check{' --dry' if args.dry else ''}: python {platform.python_version()}, "
              f"{os.cpu_count()} CPUs, {gpus} GPU(s):\n{listing}", flush=True)
        if not args.dry and gpus == 0:
            print("gpu_check: no GPU listed by nvidia-smi -L; on a machine without one, use --dry", file=sys.stderr)
            return 2
        rows: list[Row] = []
        for check in (check_refusal, check_procs_per_worker, check_loop, check_gpu_utilisation):
            print(f"gpu_check: {check.__doc__.splitlines()[0] if check.__doc__ else check.__name__}", flush=True)
            found = check(host, work)
            print("\n".join(table(found)[2:]), flush=True)  # as it comes: a run cut short keeps these
            rows += found
        if not any(r.check.startswith("(utilisation)") for r in rows):
            rows.append(Row("(utilisation) GPU utilisation through NVML", "not checked yet (hook: "
                            "check_gpu_utilisation)", "-", None))
        summary = [f"GPU check, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
                   f"{'DRY (CPU, fake nvidia-smi)' if args.dry else 'GPU host'}: python {platform.python_version()}, "
                   f"{os.cpu_count()} CPUs, {gpus} GPU(s) ({'; '.join(listing.splitlines())}); "
                   f"ran {time.monotonic() - started:.0f} s", "", *table(rows)]
        print("\n".join(summary), flush=True)
        out = os.environ.get("GPU_CHECK_OUT") or os.environ.get("OUT")
        if out:
            Path(out).mkdir(parents=True, exist_ok=True)
            (Path(out) / "gpu_check.md").write_text("\n".join(summary) + "\n")
            (Path(out) / "gpu_check.log").write_text("\n".join(host.log) + "\n")
            print(f"gpu_check: summary and log written to {out}", flush=True)
        return 0 if all(r.passed is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
