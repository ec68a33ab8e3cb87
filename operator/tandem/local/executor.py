"""The local executor: a TrainingJob's workers as processes on this machine.

It renders the job exactly as for a cluster, runs the pod template's command and env once per
worker on 127.0.0.1 (see local.plan), inside the run's private network namespace when it has one
(`_sys.netns`: no other host reaches the workers' ports), streams each worker's output with a `[worker i]` prefix
and to a log file, and treats the group as one: the first worker to fail stops the others,
and `runPolicy.backoffLimit` restarts the whole group, which resumes from its checkpoint.
Before that, with runPolicy.inPlaceRestarts, torchrun's agents inside the launchers restart a
failed training process and its peers in place; the launchers say so in one line each
(launch/recovery.py), which is read here from their output and counted apart (api/recoveries.py).

Each failure is decided as on Kubernetes, by the one restart decision (api/restart.py):
runPolicy.failurePolicy's FailJob ends the run, Ignore restarts without counting, Count (no rule
matched) counts the restart against backoffLimit. activeDeadlineSeconds runs from the start of
`run()` across restarts, as status.startTime does on Kubernetes (api/deadline.py). With a
progress or startup deadline, the figures the local Ray collects (`progress_hook`) are watched as
the operator watches them (figures/progress.py): a group whose workers report no step for the
deadline is stopped as Hung, naming the worker that went silent first, and judged the same way.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import FrameType
from typing import Any, Callable, NoReturn, Optional, Union

from rich.console import Console
from rich.live import Live
from rich.panel import Panel
from rich.text import Text

from .._sys import proctree
from .._sys.exitcodes import exit_code
from .._sys.lifetime import become_subreaper, die_with_parent
from .._sys.netns import PrivateNetwork
from .._sys.ports import free_ports
from ..api.deadline import deadline_message, deadline_passed
from ..api.failure_rules import Failure, Verdict
from ..api.model import TrainingJob
from ..api.recoveries import Recoveries
from ..api.restart import Restarts, decide_restart
from ..api.status import (
    RECOVERED_GROUP_RESTART,
    MetricsStatus,
    ProgressStatus,
    RecoveryStatus,
    TrainingJobStatus,
    parse_recovery,
    rfc3339,
)
from ..contract import (
    ENV_CHECKPOINT_DIR,
    ENV_DEBUG,
    ENV_RUN_DIR,
    ENV_RUN_ID,
    ENV_TENSORBOARD,
    ENV_TENSORBOARD_DIR,
    REASON_DEADLINE_EXCEEDED,
    REASON_ERROR,
    REASON_HUNG,
)
from ..errors import Interrupted
from ..figures import progress as progress_clock
from ..render import render_one
from . import record
from .console import worker_line
from .elastic import ElasticRun, parse_world
from .gpus import worker_gpu_env
from .logs import ACTIVE_MARKER
from .plan import WorkerPlan, plan_workers
from .tensorboard import TensorBoardServer
from .threads import local_thread_env, physical_cores

#: How long stopped workers get between SIGTERM and SIGKILL (the README promises the others stop
#: within 5 s in all).
STOP_GRACE_SECONDS = 3.0
TAIL_LINES = 20
#: After a first failure, how long to wait for peers' failures before naming the root cause.
SETTLE_SECONDS = 0.5
#: Longer than the figures service ever goes without a word while it is up (it sends figures each
#: second, and a read that Ray does not answer ends within 10 s as unavailable figures): a longer
#: silence is the service stopped or stalled, an outage after which the hang clock starts again.
STALL_SECONDS = 15.0


@dataclass
class WorkerExit:
    index: int
    code: int
    log: Path


@dataclass
class Attempt:
    restart: int
    exits: list[WorkerExit]
    seconds: float
    failed: Optional[WorkerExit] = None
    #: Why it ended, as status.lastFailure says it: Error (a worker exited non-zero), Hung (no step
    #: within the progress or startup deadline), DeadlineExceeded (activeDeadlineSeconds).
    reason: str = ""
    #: What the failure rules made of the failure; None when nothing failed.
    verdict: Optional[Verdict] = None
    #: For a hung group: what the condition would say on Kubernetes (last step, silent workers).
    detail: str = ""
    #: When the failure was seen (monotonic): a whole-group restart's recovery time runs from it.
    failed_seen: float = 0.0


@dataclass
class RunResult:
    job: str
    run_dir: Path
    attempts: list[Attempt] = field(default_factory=list)
    interrupted: bool = False
    tensorboard: Optional[TensorBoardServer] = None
    #: Restarts a failure rule with action Ignore let go (status.ignoredRestarts).
    ignored_restarts: int = 0
    #: In-place restarts and the latest failures with how each was recovered (status.inPlaceRestarts, recoveries).
    recoveries: Recoveries = field(default_factory=Recoveries)
    #: An elastic run's range, rejoins and world sizes (local/elastic.py); None for a fixed size.
    elastic: Optional[ElasticRun] = None
    #: When the first group started (RFC 3339; status.startTime).
    started_at: Optional[str] = None

    @property
    def in_place_restarts(self) -> int:
        return self.recoveries.in_place

    @property
    def restarts(self) -> int:
        return max(0, len(self.attempts) - 1)

    @property
    def succeeded(self) -> bool:
        return bool(self.attempts) and self.attempts[-1].failed is None and not self.interrupted

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        if self.succeeded:
            return 0
        failed = self.attempts[-1].failed if self.attempts else None
        return failed.code if failed and 0 < failed.code < 256 else 1


def private_dir(path: Path) -> None:
    """Create `path` and its missing parents readable by this user only (0700): a run directory
    holds the job's logs, checkpoints, metrics and the Ray session's pid file."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for directory in reversed(missing):
        directory.mkdir(mode=0o700, exist_ok=True)


def new_run_dir(root: Path, job: str, resume: bool) -> Path:
    """`root/<job>/<timestamp>`; with resume, the job's latest run (its checkpoints go on)."""
    job_dir = root / job
    if resume:
        previous = sorted(p for p in job_dir.glob("*") if p.is_dir()) if job_dir.exists() else []
        if previous:
            return previous[-1]
    run_dir = job_dir / datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    private_dir(job_dir)
    run_dir.mkdir(mode=0o700)
    return run_dir


class _Worker:
    """One running worker process and the thread that copies its output."""

    def __init__(self, plan: WorkerPlan, log: Path, lines: queue.Queue[tuple[int, str]], attached: bool = False,
                 network: Optional[PrivateNetwork] = None):
        """`attached`: the worker shares this terminal and process group (for pdb), unlogged;
        `network`: the run's private network namespace, which the worker joins."""
        self.plan, self.log = plan, log
        self.tail: list[str] = []
        self.last_line = ""
        pipe = None if attached else subprocess.PIPE
        self.process = subprocess.Popen(
            network.wrap(plan.argv) if network is not None else plan.argv,
            env={**os.environ, **plan.env},
            stdout=pipe,
            stderr=None if attached else subprocess.STDOUT,
            stdin=None if attached else subprocess.DEVNULL,
            start_new_session=not attached,
            preexec_fn=die_with_parent,
        )
        self._thread = threading.Thread(target=self._pump, args=(lines,), daemon=True)
        if not attached:
            self._thread.start()
        else:
            log.write_text("(worker ran attached to the terminal with --debug; its output was not captured)\n")

    def _pump(self, lines: queue.Queue[tuple[int, str]]) -> None:
        assert self.process.stdout is not None
        with self.log.open("w", encoding="utf-8") as out:
            for raw in self.process.stdout:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                out.write(line + "\n")
                out.flush()
                self.tail = [*self.tail, line][-TAIL_LINES:]
                if line.strip():
                    self.last_line = line.strip()
                lines.put((self.plan.index, line))

    def finish_output(self, timeout: float = 2.0) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)


class LocalExecutor:
    """Runs one TrainingJob on this machine; `run()` returns when it succeeded or gave up."""

    def __init__(
        self,
        job: TrainingJob,
        run_root: Path = Path(".tandem/runs"),
        console: Optional[Console] = None,
        resume: bool = False,
        metrics_address: str = "",
        status_hook: Optional[Callable[[], str]] = None,
        extra_env: Optional[dict[str, str]] = None,
        debug: bool = False,
        tensorboard: bool = False,
        network: Optional[PrivateNetwork] = None,
        progress_hook: Optional[Callable[[], Optional[MetricsStatus]]] = None,
        gpu_env: Optional[list[dict[str, str]]] = None,
    ):
        """`network`: a private network namespace the workers run in (TensorBoard stays on this
        host's loopback, where the browser reaches it); `gpu_env`: each worker's GPUs
        (local.gpus), found here when not given, which refuses a run this machine cannot hold
        before its run directory exists."""
        self.job = job
        self.gpu_env = worker_gpu_env(job) if gpu_env is None else gpu_env
        self.network = network
        self.console = console or Console(stderr=True)
        self.run_dir = new_run_dir(run_root, job.metadata.name, resume)
        self.metrics_address = metrics_address
        self.status_hook = status_hook
        self.extra_env = {**(extra_env or {}), **({ENV_DEBUG: "1"} if debug else {})}
        self.debug = debug
        self.tensorboard_dir = (self.run_dir / "tensorboard").resolve() if tensorboard else None
        if self.tensorboard_dir is not None:
            self.extra_env.update({ENV_TENSORBOARD: "1", ENV_TENSORBOARD_DIR: str(self.tensorboard_dir)})
        self.run_id = f"{job.metadata.name}-{self.run_dir.name}"
        #: The latest figures (LocalMetrics.latest): the steps a hang is told from.
        self.progress_hook = progress_hook
        self._clock: Optional[_ProgressWatch] = None
        self._started = time.monotonic()  # run() sets it again, as the first group starts
        self.recoveries = Recoveries()
        self.elastic = ElasticRun.of(job.spec)
        self._log_dir = self.run_dir / "logs"
        #: The group now running (restart number), which the launchers' recovery lines belong to.
        self._restart = 0
        #: A whole-group restart under way: its record, and when its failure was seen (monotonic).
        self._restarting: Optional[tuple[RecoveryStatus, float]] = None

    def run(self) -> RunResult:
        become_subreaper()
        result = RunResult(job=self.job.metadata.name, run_dir=self.run_dir, recoveries=self.recoveries,
                           elastic=self.elastic)
        if self.tensorboard_dir is not None:
            result.tensorboard = TensorBoardServer(self.tensorboard_dir).start()
            self.console.print(f"TensorBoard: [bold]{result.tensorboard.url}[/] (event files in {self.tensorboard_dir})")
        first = self._next_attempt_number()
        previous = _install_stop_signals(ignore_interrupt=self.debug)
        active = self.run_dir / ACTIVE_MARKER  # `tandem logs --follow` stops when it is gone
        active.write_text(str(os.getpid()))
        result.started_at = self._record_start()
        self._started = time.monotonic()  # the deadline's clock: api/deadline.py
        try:
            so_far = Restarts()
            while True:
                attempt = self._run_group(first + so_far.total, so_far)
                result.attempts.append(attempt)
                if attempt.failed is None or attempt.reason == REASON_DEADLINE_EXCEEDED:
                    break
                outcome = decide_restart(self._failure(attempt), self.job.spec.run_policy, so_far)
                attempt.verdict = outcome.verdict
                if not outcome.restart:
                    self.console.print(f"[red]{outcome.describe()}[/]")
                    break
                so_far = outcome.after
                result.ignored_restarts = so_far.ignored
                self._group_restart(attempt)
                self.console.print(f"[yellow]{outcome.describe()}; they resume from {self.run_dir / 'checkpoints'}[/]")
        except Interrupted:
            result.interrupted = True
            self.console.print("[yellow]interrupted: all workers stopped[/]")
        finally:
            active.unlink(missing_ok=True)
            _restore_signals(previous)
        return result

    def _record_start(self) -> str:
        """Write the run's record as Running (local/record.py) and return its start time; a resumed
        run keeps the start of the run it resumes, as a cluster job keeps status.startTime."""
        earlier = (record.read(self.run_dir) or {}).get("status") or {}
        started = earlier.get("startTime") or rfc3339(datetime.now(timezone.utc))
        record.write(self.run_dir, self.job, TrainingJobStatus(
            phase="Running", start_time=started, desired_workers=self.job.spec.worker_count))
        return str(started)

    def _group_restart(self, attempt: Attempt) -> None:
        """Record the whole-group restart about to happen; its seconds are known once the next group starts."""
        assert attempt.failed is not None
        record = RecoveryStatus(
            worker=attempt.failed.index, exit_code=attempt.failed.code if attempt.failed.code >= 0 else None,
            reason=attempt.reason or REASON_ERROR, recovered=RECOVERED_GROUP_RESTART, restart=attempt.restart,
            time=rfc3339(datetime.now(timezone.utc)))
        self.recoveries.group_restart(record)
        self._restarting = (record, attempt.failed_seen)

    @staticmethod
    def _failure(attempt: Attempt) -> Failure:
        """The failure as the rules see it: a local worker has an exit code, or was stopped as Hung."""
        assert attempt.failed is not None
        if attempt.reason == REASON_HUNG:
            return Failure(worker=attempt.failed.index, reason=REASON_HUNG)
        return Failure(worker=attempt.failed.index, exit_code=attempt.failed.code, reason=attempt.reason)

    def _next_attempt_number(self) -> int:
        logs = self.run_dir / "logs"
        return len(list(logs.glob("attempt-*"))) if logs.exists() else 0

    def _deadline_passed(self) -> bool:
        return deadline_passed(self.job.spec.run_policy, time.monotonic() - self._started)

    def _run_group(self, attempt_number: int, so_far: Restarts) -> Attempt:
        restart = self._restart = so_far.total
        job_object = render_one(self.job, "Job", restart=restart, metrics_address=self.metrics_address)
        plans = plan_workers(job_object, free_ports(self.job.spec.max_worker_count), {
            ENV_RUN_ID: self.run_id,
            ENV_RUN_DIR: str(self.run_dir.resolve()),
            ENV_CHECKPOINT_DIR: str((self.run_dir / "checkpoints").resolve()),
            "PYTHONUNBUFFERED": "1",
            **local_thread_env(self.job, os.environ, physical_cores(os.sched_getaffinity(0))),
            **self.extra_env,
        }, worker_env=self.gpu_env)
        log_dir = self.run_dir / "logs" / f"attempt-{attempt_number}"
        log_dir.mkdir(parents=True, exist_ok=True)
        self._log_dir = log_dir
        if self.elastic is not None:
            self.elastic.new_group()
        lines: queue.Queue[tuple[int, str]] = queue.Queue()
        started = time.monotonic()
        workers: list[_Worker] = []
        grace = STOP_GRACE_SECONDS  # peers of a failed worker: they cannot save, their collective is broken
        try:
            for plan in plans:
                attached = self.debug and plan.index == 0
                workers.append(_Worker(plan, log_dir / f"worker-{plan.index}.log", lines, attached, self.network))
            if self._restarting is not None:
                record, seen = self._restarting
                record.seconds = round(time.monotonic() - seen, 3)
                self._restarting = None
            if self.debug:
                self.console.print(f"[bold]--debug[/]: worker 0 has this terminal (pdb works there); "
                                   f"the other workers wait and log to {log_dir}")
            failed, reason, detail = self._watch(workers, lines, so_far)
            failed_seen = time.monotonic()
        except Interrupted:
            # Ctrl-C or SIGTERM of `tandem run` is a preemption: the workers get the job's grace
            # period to save a checkpoint, as a deleted pod does (tandem.preemption).
            grace = self.job.spec.run_policy.termination_grace_period_seconds
            self.console.print(f"[yellow]stopping: the workers have {grace} s to save a checkpoint "
                               "(Ctrl-C again: stop now)[/]")
            raise
        finally:
            self._stop(workers, grace)
            self._drain(lines, show=not self.debug)
        exits = [WorkerExit(w.plan.index, _exit_code(w.process.returncode), w.log) for w in workers]
        attempt = Attempt(restart, exits, time.monotonic() - started, failed, reason, detail=detail,
                          failed_seen=failed_seen)
        if failed is not None:
            self._report_failure(attempt, workers[failed.index])
        return attempt

    def _watch(
        self, workers: list[_Worker], lines: queue.Queue[tuple[int, str]], so_far: Restarts
    ) -> tuple[Optional[WorkerExit], str, str]:
        """Until every worker succeeded, one failed, the group hung, or the deadline passed. With
        --debug, worker 0 owns the terminal: no progress line, and the others' output only in their logs."""
        clock = self._clock = _ProgressWatch(self.job, self.progress_hook, so_far.total)
        live = None if self.debug else Live(
            self._status(workers, so_far), console=self.console, transient=True,
            refresh_per_second=4, redirect_stdout=False, redirect_stderr=False)
        with live or contextlib.nullcontext():
            while True:
                self._drain(lines, live, show=live is not None)
                if self._deadline_passed():  # first, as the operator's deadline step comes before its failure step
                    self.console.print(f"[red]{deadline_message(self.job.spec.run_policy)}: stopping all workers[/]")
                    return WorkerExit(0, 124, workers[0].log), REASON_DEADLINE_EXCEEDED, ""
                codes = [w.process.poll() for w in workers]
                if self.elastic is not None:
                    codes = self._rejoin_lost(self.elastic, workers, codes, lines)
                if any(code not in (None, 0) for code in codes):
                    return self._root_cause(workers), REASON_ERROR, ""
                if all(code == 0 for code in codes):
                    return None, "", ""
                hung = clock.hang()
                if hung is not None:
                    index = hung.worker if hung.worker is not None else 0
                    self.console.print(f"[red]{REASON_HUNG}: {hung.message()}: stopping all workers[/]")
                    return WorkerExit(index, -1, workers[index].log), REASON_HUNG, hung.message()
                if live is not None:
                    live.update(self._status(workers, so_far))
                time.sleep(0.1)

    def _rejoin_lost(self, elastic: ElasticRun, workers: list[_Worker], codes: list[Optional[int]],
                     lines: queue.Queue[tuple[int, str]]) -> list[Optional[int]]:
        """An elastic run: a lost worker that may rejoin (local/elastic.py) waits until the others
        run without it, then starts again for its index; its exit is no failure of the group
        meanwhile. Returns `codes` with the replaced workers' left out (None: running)."""
        alive = sum(1 for code in codes if code is None)
        for worker, code in zip(workers, codes, strict=True):
            index = worker.plan.index
            if code in (None, 0) or index in elastic.pending or not elastic.may_rejoin(index, _exit_code(code), alive):
                continue
            elastic.lost(index, self.recoveries.in_place, time.monotonic())
            self.console.print(f"[yellow]worker {index} lost (exit {_exit_code(code)}): {alive} of "
                               f"{elastic.desired} train on (min {elastic.minimum}); it rejoins once they have "
                               "restarted without it[/]")
        for index in elastic.due(self.recoveries.in_place, time.monotonic()):
            log = self._log_dir / f"worker-{index}-rejoin-{elastic.rejoins}.log"
            workers[index] = _Worker(workers[index].plan, log, lines, network=self.network)
            self.console.print(f"[green]worker {index} rejoins (log {log})[/]")
        return [None if w.plan.index in elastic.pending else w.process.poll() for w in workers]

    def _root_cause(self, workers: list[_Worker]) -> WorkerExit:
        """The worker whose failure started it: when one dies, its peers fail a moment later
        with a generic error (exit 1) from the broken collective, so wait briefly and prefer
        a specific exit code over 1, then the first failure seen."""
        seen = [w for w in workers if w.process.poll() not in (None, 0)]
        time.sleep(SETTLE_SECONDS)
        seen += [w for w in workers if w.process.poll() not in (None, 0) and w not in seen]
        root = min(seen, key=lambda w: (_exit_code(w.process.returncode) == 1, seen.index(w)))
        return WorkerExit(root.plan.index, _exit_code(root.process.returncode), root.log)

    def _status(self, workers: list[_Worker], so_far: Restarts) -> Text:
        running = sum(1 for w in workers if w.process.poll() is None)
        elapsed = int(time.monotonic() - self._started)
        ignored = f" (+{so_far.ignored} not counted)" if so_far.ignored else ""
        text = Text.assemble(
            ("● ", "green"), (self.job.metadata.name, "bold"),
            f"  {running}/{len(workers)} workers running  {elapsed // 60:02d}:{elapsed % 60:02d}",
            f"  restarts {so_far.counted}/{self.job.spec.run_policy.backoff_limit}{ignored}",
        )
        if self.job.spec.run_policy.in_place_restarts:
            text.append(f"  in place {self.recoveries.in_place}")
        if self.elastic is not None and self.elastic.world_size is not None:
            text.append(f"  world size {self.elastic.world_size}")
        done = self._clock.line() if self._clock is not None else ""
        if done:
            text.append(f"  {done}", style="bold")
        extra = self.status_hook() if self.status_hook else ""
        if extra:
            text.append(f"  {extra}", style="bold cyan")
        if workers and workers[0].last_line:
            text.append(f"  │ {workers[0].last_line[:70]}", style="dim")
        return text

    def _drain(self, lines: queue.Queue[tuple[int, str]], live: Optional[Live] = None, show: bool = True) -> None:
        console = live.console if live else self.console
        while True:
            try:
                index, line = lines.get_nowait()
            except queue.Empty:
                return
            world = parse_world(line)
            if world is not None and self.elastic is not None:
                self.elastic.told(world)
            told = parse_recovery(line)
            if told is not None:
                round_, at, record = told
                record.restart = self._restart
                self.recoveries.told_in_place(round_, at, record)
            if not show:
                continue
            console.print(worker_line(index, line), highlight=False, soft_wrap=True)

    def _stop(self, workers: list[_Worker], grace: float = STOP_GRACE_SECONDS) -> None:
        """Stop every worker and all they started, SIGTERM then SIGKILL after `grace` s; no
        process outlives this call. A second Ctrl-C (or SIGTERM) meanwhile ends the wait."""
        live = [w.process.pid for w in workers if w.process.poll() is None]
        if live:
            try:
                proctree.stop_trees(live, grace)
            except Interrupted:
                proctree.stop_trees(live, 0)
        for w in workers:
            try:
                w.process.wait(timeout=STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                w.process.kill()
                w.process.wait()
            w.finish_output()
        # Orphans re-parented to us (we are a subreaper) still carry the run's id in their env.
        orphans = proctree.carrying_env(proctree.descendants(os.getpid()), ENV_RUN_ID, self.run_id)
        if orphans:
            proctree.stop_trees(orphans, 1.0)
        proctree.reap_orphans({w.process.pid for w in workers})

    def _report_failure(self, attempt: Attempt, worker: _Worker) -> None:
        assert attempt.failed is not None
        if attempt.reason in (REASON_DEADLINE_EXCEEDED, REASON_HUNG):
            return
        tail = "\n".join(worker.tail[-TAIL_LINES:]) or "(no output)"
        self.console.print(Panel(
            Text(tail),
            title=f"worker {attempt.failed.index} exited with code {attempt.failed.code} — last lines of {worker.log}",
            border_style="red",
        ))


class _ProgressWatch:
    """One group's steps, read from the latest figures as they come (figures/progress.py, the
    operator's own rules): percent and ETA for the live line, and, with a progress or startup
    deadline, judged for a hang."""

    def __init__(self, job: TrainingJob, latest: Optional[Callable[[], Optional[MetricsStatus]]], restart: int):
        policy = job.spec.run_policy
        self.latest = latest
        self.judges = policy.watches_progress
        self.progress_deadline, self.startup_deadline = policy.progress_deadline_seconds, policy.startup_deadline_seconds
        self.restart = restart
        self.progress: Optional[ProgressStatus] = None
        self._seen: Optional[MetricsStatus] = None
        #: The figures path was down since the last fresh figures: unavailable figures came, or none
        #: came for longer than the figures service ever takes when it is up (`STALL_SECONDS`).
        self._down = False
        self._fresh_at = time.monotonic()

    def hang(self) -> Optional[progress_clock.Hang]:
        figures = self.latest() if self.latest is not None else None
        if figures is not None and figures is not self._seen and not figures.available:
            self._seen, self._down = figures, True
        if figures is None or figures is self._seen:
            return None  # no fresh figures: nothing is judged (an outage is not a hang)
        previous, self._seen = self._seen, figures
        resumed = (self._down or time.monotonic() - self._fresh_at > STALL_SECONDS or progress_clock.intake_interrupted(
            figures.ingest_interrupted_at, previous.updated_at if previous is not None else None))
        self._down, self._fresh_at = False, time.monotonic()
        steps = {w.index: w.steps for w in figures.per_worker}
        self.progress = progress_clock.observe(self.progress, self.restart, steps, datetime.now(timezone.utc),
                                               figures.per_worker, resumed=resumed)
        if not self.judges:
            return None
        return progress_clock.hang(self.progress, self.restart, self.progress_deadline, self.startup_deadline)

    def line(self) -> str:
        """`37% ETA 1:05` for the live line; empty before a total is known."""
        return progress_clock.progress_text(self.progress)


def _exit_code(returncode: Optional[int]) -> int:
    """Popen's -N for a signal becomes the shell's 128+N."""
    return -1 if returncode is None else exit_code(returncode)


#: What signal.signal() takes and gives back: a function, SIG_DFL or SIG_IGN, or None (not set from Python).
_Handler = Union[Callable[[int, Optional[FrameType]], Any], int, signal.Handlers, None]


def _raise_interrupted(signum: int, frame: Optional[FrameType]) -> NoReturn:
    raise Interrupted(signal.Signals(signum).name)


def _ignore(signum: int, frame: Optional[FrameType]) -> None:
    pass


def _install_stop_signals(ignore_interrupt: bool = False) -> dict[signal.Signals, _Handler]:
    """Ctrl-C, SIGTERM and SIGHUP stop the run; while debugging, Ctrl-C belongs to pdb."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous: dict[signal.Signals, _Handler] = {}
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        # Not SIG_IGN: an ignored SIGINT would be inherited by the workers, and pdb needs it.
        handler = _ignore if (ignore_interrupt and sig == signal.SIGINT) else _raise_interrupted
        previous[sig] = signal.signal(sig, handler)
    return previous


def _restore_signals(previous: dict[signal.Signals, _Handler]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)
