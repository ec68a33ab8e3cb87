"""B6: goodput under an injected failure, per rung of the recovery ladder, through `tandem run`.

    "$(hack/bootstrap.sh)/bin/python" benchmarks/b6_goodput.py [--steps 3000] [--fail-at 1550]
        [--checkpoint-every 100] [--repeats 3] [--scenarios none,group,in-place,preemption] [--no-append]

jobs/mnist-ddp.yaml (2 workers, CPU), its command replaced by the same script wrapped in
benchmarks/stamp.py (every printed line stamped with the time it was written), a line every step,
a checkpoint every --checkpoint-every steps, metrics off (no Ray beside the training on a small
machine). Each scenario runs in a fresh runs directory:

- **none**: no failure; the reference for goodput.
- **group**: rank 1 exits 137 (as if SIGKILLed) before step --fail-at+1 (jobs/train_ddp.py
  --crash-at-step, once), runPolicy.inPlaceRestarts 0: the whole group restarts (backoffLimit).
- **in-place**: the same failure with runPolicy.inPlaceRestarts 1: torchrun's agents restart the
  training processes, the workers stay.
- **preemption**: `tandem run` SIGTERM'd once rank 0 logged step --fail-at (as a pod deletion,
  with runPolicy.terminationGracePeriodSeconds to save), then `tandem run --resume` at once.

The figures come from the runs themselves (benchmarks/goodput.py): the stamped step lines of
rank 0 in the run's worker logs, the crash's own stamped line, and `tandem run`'s own summary
(status: counted restarts, in-place restarts, each recovery's seconds). CPU seconds: every
process of the scenario's `tandem run`s (getrusage of reaped children; `tandem run` reaps its
workers' orphans). Median over --repeats, scenarios interleaved.

Not measured here: elastic shrink-and-grow (Tandem has no worker range yet: `spec.workers` is
one count); the output says so, and no row stands in for it. Real pods: benchmarks/b6_node.py.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BENCH, REPO, append_results, loadavg, table
from goodput import Figures, crash_time, figures, lives

JOB = "jobs/mnist-ddp.yaml"
STAMP = "benchmarks/stamp.py"
SCENARIOS = ("none", "group", "in-place", "preemption")
#: What no row stands in for (said in the output, the JSON and docs/benchmarks.md).
NOT_MEASURED = {
    "elastic": "elastic shrink-and-grow: not measured, Tandem has no worker range yet (spec.workers is one count)",
}
RESTARTS = re.compile(r"restarts: (\d+)(?:\s+in-place restarts: (\d+))?")
LOGGED_STEP = re.compile(r"rank 0: step (\d+)/")
RECOVERED = re.compile(r"recovered (in place|by a group restart) in ([\d.]+) s")
TIMEOUT = 900


@dataclass
class Outcome:
    """One scenario run: its figures and what `tandem run` said of it."""

    scenario: str
    figures: Figures
    cpu_seconds: Optional[float]  # None where the processes are not the benchmark's children (pods)
    restarts: int
    in_place: int
    recovered: list[tuple[str, float]]


def train_command(args: argparse.Namespace, crash: bool) -> list[str]:
    command = ["python", STAMP, "jobs/train_ddp.py", "--steps", str(args.steps), "--checkpoint-every",
               str(args.checkpoint_every), "--log-every", "1"]
    if crash:
        command += ["--crash-at-step", str(args.fail_at), "--crash-rank", "1", "--crash-exit-code", "137"]
    return command


def tandem_run(runs: Path, name: str, command: list[str], sets: list[str], resume: bool = False) -> list[str]:
    argv = [sys.executable, "-m", "tandem", "run", JOB, "--runs-dir", str(runs), "--set", f"metadata.name={name}",
            "--set", "metrics.enabled=false", "--set", "spec.command=" + json.dumps(command)]
    for override in sets:
        argv += ["--set", override]
    return [*argv, "--resume"] if resume else argv


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_dir_lines(runs: Path, name: str) -> list[str]:
    lines: list[str] = []
    for log in sorted(runs.glob(f"{name}/*/logs/attempt-*/worker-*.log")):
        lines += log.read_text(errors="replace").splitlines()
    return lines


def logged_step(runs: Path, name: str) -> int:
    """The last step rank 0 logged so far, while the run goes on: only the tail of worker 0's log
    is read, so that polling takes little CPU from the training it measures."""
    logs = sorted(runs.glob(f"{name}/*/logs/attempt-*/worker-0.log"))
    if not logs:
        return 0
    with logs[-1].open("rb") as f:
        f.seek(max(0, f.seek(0, os.SEEK_END) - 4096))
        tail = f.read().decode(errors="replace")
    return max((int(k) for k in LOGGED_STEP.findall(tail)), default=0)


def start(argv: list[str]) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "operator"), "COLUMNS": "200"}
    return subprocess.Popen(argv, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen[str], expected: int, what: str) -> str:
    output, _ = proc.communicate(timeout=TIMEOUT)
    if proc.returncode != expected:
        raise RuntimeError(f"{what}: `tandem run` exited {proc.returncode}, expected {expected}:\n{output[-3000:]}")
    return output


def preempt(runs: Path, name: str, args: argparse.Namespace) -> tuple[str, float]:
    """Start the run, SIGTERM it once rank 0 logged --fail-at steps; its output and the signal's time."""
    proc = start(tandem_run(runs, name, train_command(args, crash=False), []))
    deadline = time.monotonic() + TIMEOUT
    while logged_step(runs, name) < args.fail_at:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"preemption: the run ended or stalled before step {args.fail_at}:\n"
                               f"{(proc.communicate()[0] or '')[-3000:]}")
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    at = time.time()
    return finish(proc, 130, "preemption (SIGTERM)"), at


def run_scenario(scenario: str, args: argparse.Namespace, runs: Path) -> Outcome:
    name = f"b6-{scenario}"
    cpu0, t0 = children_cpu(), time.monotonic()
    failed_at: Optional[float] = None
    if scenario == "preemption":
        first, failed_at = preempt(runs, name, args)
        output = first + finish(start(tandem_run(runs, name, train_command(args, crash=False), [], resume=True)),
                                0, "resume")
    else:
        sets = ["runPolicy.backoffLimit=1", f"runPolicy.inPlaceRestarts={1 if scenario == 'in-place' else 0}"]
        output = finish(start(tandem_run(runs, name, train_command(args, crash=scenario != "none"), sets)), 0, scenario)
    wall, cpu = time.monotonic() - t0, children_cpu() - cpu0
    lines = run_dir_lines(runs, name)
    if scenario in ("group", "in-place"):
        crash = crash_time(lines)
        if crash is None:
            raise RuntimeError(f"{scenario}: no injected crash in the logs")
        failed_at = crash[0]
    said = RESTARTS.findall(output)[-1]  # the last `tandem run`'s summary
    return Outcome(scenario, figures(lives(lines), wall, failed_at), cpu, int(said[0]), int(said[1] or 0),
                   [(how, float(s)) for how, s in RECOVERED.findall(output)])


def median_of(values: list[Optional[float]]) -> Optional[float]:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def summary(scenario: str, outcomes: list[Outcome]) -> dict[str, Any]:
    """The scenario's medians over the repeats, and every repeat's own figures."""
    return {
        "scenario": scenario,
        "seconds_to_first_step": median_of([o.figures.seconds_to_first_step for o in outcomes]),
        "status_recovery_seconds": median_of([o.recovered[0][1] if o.recovered else None for o in outcomes]),
        "recovered": sorted({how for o in outcomes for how, _ in o.recovered}),
        "counted_restarts": median_of([float(o.restarts) for o in outcomes]),
        "in_place_restarts": median_of([float(o.in_place) for o in outcomes]),
        "steps_lost": median_of([None if o.figures.steps_lost is None else float(o.figures.steps_lost) for o in outcomes]),
        "goodput": median_of([o.figures.goodput for o in outcomes]),
        "productive_seconds": median_of([o.figures.productive_seconds for o in outcomes]),
        "wall_seconds": median_of([o.figures.wall_seconds for o in outcomes]),
        "cpu_seconds": median_of([o.cpu_seconds for o in outcomes]),
        "steps": [o.figures.steps for o in outcomes],
        "runs": [{"seconds_to_first_step": o.figures.seconds_to_first_step, "reached": o.figures.reached,
                  "resumed_from": o.figures.resumed_from, "goodput": o.figures.goodput,
                  "wall_seconds": o.figures.wall_seconds, "cpu_seconds": o.cpu_seconds, "restarts": o.restarts,
                  "in_place_restarts": o.in_place, "recovered": o.recovered} for o in outcomes],
    }


def text(value: Optional[float], fmt: str = "{:.1f}") -> str:
    return "-" if value is None else fmt.format(value)


def rows(results: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    return [(r["scenario"], ", ".join(r["recovered"]) or "-", text(r["counted_restarts"], "{:.0f}"),
             text(r["in_place_restarts"], "{:.0f}"), text(r["seconds_to_first_step"]),
             text(r["status_recovery_seconds"]), text(r["steps_lost"], "{:.0f}"), text(r["goodput"], "{:.1%}"),
             text(r["wall_seconds"]), text(r["cpu_seconds"])) for r in results]


HEADERS = ("scenario", "recovered (status)", "counted restarts", "in-place restarts", "failure -> first step s",
           "status recovery s", "steps lost", "goodput", "wall s", "CPU s")


def verdicts(results: list[dict[str, Any]], checkpoint_every: int) -> list[str]:
    """The issue's two targets, as measured (never asserted: a benchmark records)."""
    by = {r["scenario"]: r for r in results}
    out = []
    group, in_place = by.get("group", {}), by.get("in-place", {})
    if group.get("seconds_to_first_step") and in_place.get("seconds_to_first_step") is not None:
        ratio = in_place["seconds_to_first_step"] / group["seconds_to_first_step"]
        out.append(f"in-place / group-restart time to the first step after the failure: {ratio:.2f} "
                   f"(target <= 0.33: {'met' if ratio <= 1 / 3 else 'not met'})")
    lost = by.get("preemption", {}).get("steps_lost")
    if lost is not None:
        out.append(f"steps lost on preemption: {lost:.0f} (target <= one checkpoint interval, {checkpoint_every}: "
                   f"{'met' if lost <= checkpoint_every else 'not met'})")
    return out


def plot(results: list[dict[str, Any]], png: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["scenario"] for r in results]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    recovery = [r["seconds_to_first_step"] or 0.0 for r in results]
    left.bar(names, recovery, color="tab:red")
    left.set_ylabel("seconds from failure to the first step after it")
    right.bar(names, [r["goodput"] * 100 for r in results], color="tab:green")
    right.set_ylabel("goodput (productive step time / wall time), %")
    right.set_ylim(0, 100)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


def arguments(doc: str, known: tuple[str, ...], output: Path) -> tuple[argparse.Namespace, list[str]]:
    """B6's command line (this script's and b6_node.py's): the run's shape and the scenarios asked for."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--fail-at", type=int, default=None, help="step of the failure; default: the middle of an interval "
                                                             "near half the steps")
    p.add_argument("--checkpoint-every", type=int, default=100)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--scenarios", default=",".join(known))
    p.add_argument("--output", type=Path, default=output, help="the plot; its JSON beside it")
    p.add_argument("--no-append", action="store_true")
    args = p.parse_args()
    if args.fail_at is None:
        args.fail_at = (args.steps // 2 // args.checkpoint_every) * args.checkpoint_every + args.checkpoint_every // 2
    scenarios = [s for s in args.scenarios.split(",") if s]
    unknown = sorted(set(scenarios) - set(known))
    if unknown or not 0 < args.fail_at < args.steps or args.checkpoint_every >= args.fail_at:
        p.error(f"scenarios from {known}; need checkpoint-every < fail-at < steps (unknown: {unknown})")
    return args, scenarios


def main() -> int:
    args, scenarios = arguments(__doc__, SCENARIOS, BENCH / "b6_goodput.png")
    for line in NOT_MEASURED.values():
        print(line, file=sys.stderr)
    load_before = loadavg()
    outcomes: dict[str, list[Outcome]] = {s: [] for s in scenarios}
    with tempfile.TemporaryDirectory(prefix="tandem-b6-") as tmp:
        for repeat in range(args.repeats):
            for scenario in scenarios:
                print(f"repeat {repeat + 1}/{args.repeats}: {scenario} (load {loadavg()})", file=sys.stderr, flush=True)
                outcome = run_scenario(scenario, args, Path(tmp) / f"{scenario}-{repeat}")
                outcomes[scenario].append(outcome)
                print(f"  {outcome.figures}, CPU {outcome.cpu_seconds:.1f} s, restarts {outcome.restarts}, "
                      f"in place {outcome.in_place}, {outcome.recovered}", file=sys.stderr, flush=True)
    results = [summary(s, outcomes[s]) for s in scenarios]
    out = table(HEADERS, rows(results))
    judged = verdicts(results, args.checkpoint_every)
    print(out, *judged, *NOT_MEASURED.values(), sep="\n")
    config = {"job": JOB, "workers": 2, "steps": args.steps, "fail_at": args.fail_at,
              "checkpoint_every": args.checkpoint_every, "repeats": args.repeats,
              "load_before": load_before, "load_after": loadavg()}
    args.output.with_suffix(".json").write_text(json.dumps(
        {"config": config, "results": results, "verdicts": judged, "not_measured": NOT_MEASURED}, indent=2) + "\n")
    plot(results, args.output, f"B6 goodput: {JOB}, 2 workers, failure at step {args.fail_at} of {args.steps}")
    if not args.no_append:
        body = "\n".join([
            f"`{JOB}` (2 workers, CPU, metrics off), train_ddp.py under benchmarks/stamp.py, {args.steps} steps, a "
            f"checkpoint every {args.checkpoint_every}, the failure at step {args.fail_at}; median of {args.repeats} "
            f"interleaved repeats. Load average before {load_before}, after {loadavg()}. Plot "
            f"`benchmarks/{args.output.name}`, figures `benchmarks/{args.output.with_suffix('.json').name}`.", "",
            out, "", *[f"- {v}" for v in judged], *[f"- {v}" for v in NOT_MEASURED.values()],
        ])
        append_results("B6 goodput (local)", body, "benchmarks/b6_goodput.py " + " ".join(sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
