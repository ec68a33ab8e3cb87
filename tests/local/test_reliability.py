"""Local runs under faults (docs/reliability.md): SIGKILL of a worker's launcher, of a training rank, of
`tandem run` itself, and Ctrl-C on a real terminal. After each: no process of the run is left,
the checkpoint on disk loads, and the run goes on from it (`tandem run --resume`, or the
group restart within runPolicy.backoffLimit) and says `resumed from step X`.

tests/local/test_local_run.py covers the rest: a rank's SIGKILL reported with no process left,
SIGINT/SIGTERM of `tandem run` leaving nothing, a group restart after an injected exit code.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tandem.frameworks.pytorch import GUARD_MODULE
from tandem.launch.warm import SOCKET_NAME, WARM_MODULE
from tests.conftest import REPO
from tests.support.commands import run_args, run_tandem, start_tandem, tandem_argv
from tests.support.processes import (
    cmdline,
    environ,
    parent,
    processes_of_job,
    tree,
    wait_for_new_pid,
    wait_gone,
    wait_until_gone,
    warm_child,
)

pytestmark = pytest.mark.local

CHECKPOINT_EVERY = 10


def command(tmp_path: Path, steps: int, sleep: float = 0.0) -> str:
    args = ["python", "jobs/train_ddp.py", "--steps", str(steps), "--checkpoint-every", str(CHECKPOINT_EVERY),
            "--log-every", "10", "--output-dir", str(tmp_path / "out")]
    if sleep:
        args += ["--sleep-per-step", str(sleep)]
    return "spec.command=" + json.dumps(args)


def tandem_run_args(tmp_path: Path, job_name: str, *sets: str, resume: bool = False, metrics: bool = False) -> list[str]:
    """The arguments of `tandem run` for this module: metrics off unless asked for."""
    return run_args(tmp_path / "runs", *sets, name=job_name, metrics=metrics, options=["--resume"] if resume else [])


def checkpoint_path(tmp_path: Path, job_name: str) -> Path | None:
    found = sorted((tmp_path / "runs" / job_name).glob("*/checkpoints/checkpoint.pt"))
    return found[-1] if found else None


def checkpoint_step(path: Path) -> int:
    """Loads the checkpoint as a resuming run would (weights_only), checks its shape, returns its step."""
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    assert set(state) == {"step", "model", "optimizer"}, set(state)
    assert state["model"] and all(isinstance(t, torch.Tensor) for t in state["model"].values())
    assert state["step"] > 0, state["step"]  # a multiple of CHECKPOINT_EVERY, or the step a SIGTERM stopped at
    return int(state["step"])


def wait_for_checkpoint(tmp_path: Path, job_name: str, at_least: int, timeout: float = 150) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        path = checkpoint_path(tmp_path, job_name)
        if path is not None:
            try:
                step = checkpoint_step(path)
                if step >= at_least:
                    return step
            except Exception:  # noqa: BLE001 - replaced between exists() and load: look again
                pass
        time.sleep(0.3)
    raise AssertionError(f"no checkpoint at step >= {at_least} within {timeout} s")


def launcher_of_worker(job_name: str, index: int) -> int:
    """The `python -m tandem.launch` process of worker `index` (found by pid in /proc)."""
    for pid in processes_of_job(job_name):
        argv = cmdline(pid)
        if b"tandem.launch" in argv and f"TANDEM_WORKER_INDEX={index}".encode() in environ(pid):
            return pid
    raise AssertionError(f"no launcher of worker {index} among {processes_of_job(job_name)}")


def resume(tmp_path: Path, job_name: str, extra_steps: int = 20) -> tuple[subprocess.CompletedProcess, int]:
    """`tandem run --resume` of the same job with a total a little past the checkpoint."""
    step = checkpoint_step(checkpoint_path(tmp_path, job_name))
    result = run_tandem(*tandem_run_args(tmp_path, job_name, command(tmp_path, step + extra_steps), resume=True), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"rank 0: resumed from step {step}" in result.stderr, result.stderr[-3000:]
    assert f"rank 1: resumed from step {step}" in result.stderr, result.stderr[-3000:]
    ranks = [json.loads((tmp_path / "out" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["steps"] for r in ranks] == [step + extra_steps] * 2
    assert ranks[0]["checksum"] == ranks[1]["checksum"]
    assert checkpoint_step(checkpoint_path(tmp_path, job_name)) == step + extra_steps
    # --resume continued the same run directory: one run, two attempts' logs.
    assert len(list((tmp_path / "runs" / job_name).iterdir())) == 1
    return result, step


def test_sigkill_of_a_worker_launcher(tmp_path, job_name):
    run = start_tandem(*tandem_run_args(tmp_path, job_name, "runPolicy.backoffLimit=0", command(tmp_path, 100000, 0.05)))
    try:
        wait_for_checkpoint(tmp_path, job_name, 2 * CHECKPOINT_EVERY)
        launcher = launcher_of_worker(job_name, 1)
        everything = tree(run.pid)
        os.kill(launcher, signal.SIGKILL)
        output, _ = run.communicate(timeout=60)
        assert run.returncode == 137, output[-3000:]
        assert "worker 1 exited with code 137" in output, output[-3000:]
        assert wait_gone(everything - {run.pid}) == []
        assert wait_until_gone(job_name, 5) == []
    finally:
        run.kill()
    resume(tmp_path, job_name)


def test_sigkill_of_tandem_run_leaves_nothing_and_resume_continues(tmp_path, job_name):
    # Metrics on: the private Ray that `tandem run` starts must go down with it too.
    run = start_tandem(*tandem_run_args(tmp_path, job_name, command(tmp_path, 100000, 0.05), metrics=True),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_checkpoint(tmp_path, job_name, 2 * CHECKPOINT_EVERY, timeout=200)
        everything = tree(run.pid)
        assert len(everything) >= 5, everything  # tandem run, 2 launchers, their torchruns and ranks
        run.send_signal(signal.SIGKILL)
        run.wait(10)
        left = wait_gone(everything, 20)
        assert left == [], {pid: b" ".join(cmdline(pid))[:200] for pid in left}
        assert wait_until_gone(job_name, 5) == []
    finally:
        run.kill()
    resume(tmp_path, job_name)


def test_ctrl_c_on_a_terminal_then_resume(tmp_path, job_name):
    pexpect = pytest.importorskip("pexpect")
    argv = tandem_argv(*tandem_run_args(tmp_path, job_name, command(tmp_path, 100000, 0.05)))
    # The terminal echoes "^C" the moment it reads the interrupt, which can fall between the bytes
    # of a character the run was writing (its progress bar's): decode leniently, as a terminal does.
    child = pexpect.spawn(argv[0], argv[1:], cwd=str(REPO), encoding="utf-8", codec_errors="replace", timeout=60,
                          env={**os.environ, "COLUMNS": "200"}, dimensions=(50, 200))
    try:
        wait_for_checkpoint(tmp_path, job_name, 2 * CHECKPOINT_EVERY)
        everything = tree(child.pid)
        child.sendintr()  # the terminal's Ctrl-C: SIGINT to the foreground process group
        child.expect("interrupted", timeout=30)
        child.expect(pexpect.EOF, timeout=30)
        child.close()
        assert child.exitstatus == 130, (child.exitstatus, child.signalstatus)
        assert wait_gone(everything) == []
        assert wait_until_gone(job_name, 5) == []
    finally:
        if child.isalive():
            child.terminate(force=True)
    # No torn file: the last checkpoint before Ctrl-C loads, and no temporary is left as the
    # checkpoint (saves are write-to-temp then os.replace).
    path = checkpoint_path(tmp_path, job_name)
    assert path is not None and checkpoint_step(path) >= 2 * CHECKPOINT_EVERY
    resume(tmp_path, job_name)


def test_sigkill_of_a_rank_restarts_the_group_from_its_checkpoint(tmp_path, job_name):
    total = 150
    run = start_tandem(*tandem_run_args(tmp_path, job_name, "runPolicy.backoffLimit=1", command(tmp_path, total, 0.1)))
    try:
        step = wait_for_checkpoint(tmp_path, job_name, 2 * CHECKPOINT_EVERY)
        ranks = [p for p in processes_of_job(job_name)
                 if b"jobs/train_ddp.py" in cmdline(p) and b"RANK=1" in environ(p)]
        assert ranks, "rank 1 not found"
        os.kill(ranks[-1], signal.SIGKILL)
        output, _ = run.communicate(timeout=300)
        assert run.returncode == 0, output[-3000:]
        assert "restarting all workers (1/1)" in output
        resumed = [int(s) for s in re.findall(r"rank 0: resumed from step (\d+)", output)]
        assert len(resumed) == 1 and resumed[0] >= step, (resumed, step)
        results = [json.loads((tmp_path / "out" / f"rank{r}.json").read_text()) for r in (0, 1)]
        assert [r["steps"] for r in results] == [total, total]
        assert results[0]["checksum"] == results[1]["checksum"]
        assert checkpoint_step(checkpoint_path(tmp_path, job_name)) == total
        assert wait_until_gone(job_name, 5) == []
    finally:
        run.kill()


def training_process(job_name: str, rank: int) -> int:
    """The newest training process of global rank `rank` (jobs/train_ddp.py under torchrun): the
    guard that exec'd it (a first start), or after an in-place restart the process the worker's
    warm interpreter forked for its guard, whose own cmdline and environ are the server's."""
    found = []
    for p in processes_of_job(job_name):
        if b"jobs/train_ddp.py" not in cmdline(p) or f"RANK={rank}".encode() not in environ(p):
            continue
        if GUARD_MODULE.encode() not in cmdline(p):
            found.append(p)
        elif (forked := warm_child(p)) is not None:
            found.append(forked)
    assert found, f"no training process of rank {rank}"
    return max(found)


def wait_for_new_process(job_name: str, rank: int, old: int) -> int:
    """The pid of rank `rank`'s training process once it is another than `old` (restarted in place)."""
    return wait_for_new_pid(lambda: training_process(job_name, rank), old,
                            f"rank {rank}'s training process was not restarted")


def final_ranks(tmp_path: Path, total: int) -> None:
    results = [json.loads((tmp_path / "out" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["steps"] for r in results] == [total, total]
    assert results[0]["checksum"] == results[1]["checksum"]


def ended_in_place(run: subprocess.Popen[str], tmp_path: Path, total: int, step: int) -> str:
    """The run's output, once it ended 0 without a group restart, rank 0 resumed once from `step` or
    later, and the ranks ended with the same weights."""
    output, _ = run.communicate(timeout=300)
    assert run.returncode == 0, output[-3000:]
    assert "restarting all workers" not in output, output[-3000:]
    resumed = [int(s) for s in re.findall(r"rank 0: resumed from step (\d+)", output)]
    assert len(resumed) == 1 and resumed[0] >= step, (resumed, step)
    final_ranks(tmp_path, total)
    return output


def test_sigkill_of_a_rank_restarts_it_in_place(tmp_path, job_name):
    """runPolicy.inPlaceRestarts: torchrun's agents restart the training processes, the launchers
    (the local run's workers) stay, and the run counts one in-place restart and no group restart."""
    total = 150
    run = start_tandem(*tandem_run_args(tmp_path, job_name, "runPolicy.inPlaceRestarts=1", "runPolicy.backoffLimit=1",
                                        command(tmp_path, total, 0.1)))
    try:
        step = wait_for_checkpoint(tmp_path, job_name, 2 * CHECKPOINT_EVERY)
        launchers = [launcher_of_worker(job_name, i) for i in (0, 1)]
        victim = training_process(job_name, 1)
        os.kill(victim, signal.SIGKILL)
        wait_for_new_process(job_name, 1, victim)
        assert [launcher_of_worker(job_name, i) for i in (0, 1)] == launchers  # the same launchers, in place
        output = ended_in_place(run, tmp_path, total, step)
        assert re.search(r"restarts: 0   in-place restarts: 1 ", output), output[-3000:]
        recovered = re.findall(r"recovered in place in [\d.]+ s: worker (\d) rank (\d) exit (\d+) \((\w+)\)", output)
        assert recovered == [("1", "1", "137", "SIGKILL")], output[-3000:]
        assert wait_until_gone(job_name, 5) == []
    finally:
        run.kill()


def warm_servers(job_name: str) -> list[int]:
    """The job's warm interpreters (one per worker's agent) that listen, their sockets made."""
    return [p for p in processes_of_job(job_name)
            if WARM_MODULE.encode() in cmdline(p) and any(a.endswith(SOCKET_NAME.encode()) and os.path.exists(a)
                                                          for a in cmdline(p))]


def test_a_rank_restarted_in_place_is_forked_by_its_warm_interpreter(tmp_path, job_name):
    """With in-place restarts each worker's agent starts a warm interpreter (launch/warm.py): the
    restarted training processes are its children, not new interpreters, and the run ends as the
    in-place restart without it does (every step, the same weights on both ranks)."""
    total = 150
    run = start_tandem(*tandem_run_args(tmp_path, job_name, "runPolicy.inPlaceRestarts=1", "runPolicy.backoffLimit=1",
                                        command(tmp_path, total, 0.1)))
    try:
        step = wait_for_checkpoint(tmp_path, job_name, 2 * CHECKPOINT_EVERY)
        deadline = time.monotonic() + 150  # a hang bound: the servers import torch at low priority
        while len(warm_servers(job_name)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        servers = warm_servers(job_name)
        assert len(servers) == 2, "the workers' warm interpreters did not start"
        victims = [training_process(job_name, r) for r in (0, 1)]
        assert all(parent(v) not in servers for v in victims)  # a first start execs Python
        os.kill(victims[1], signal.SIGKILL)
        restarted = [wait_for_new_process(job_name, r, victims[r]) for r in (0, 1)]
        assert all(parent(p) in servers for p in restarted), (restarted, servers)
        output = ended_in_place(run, tmp_path, total, step)
        recovered = re.findall(r"recovered in place in [\d.]+ s: worker (\d) rank (\d) exit (\d+) \((\w+)\)", output)
        assert recovered == [("1", "1", "137", "SIGKILL")], output[-3000:]
        assert wait_until_gone(job_name, 5) == []
    finally:
        run.kill()


def test_a_failure_past_the_in_place_budget_restarts_the_group(tmp_path, job_name):
    """With inPlaceRestarts spent, the next failure goes to the whole-group restart (backoffLimit)."""
    total = 200
    run = start_tandem(*tandem_run_args(tmp_path, job_name, "runPolicy.inPlaceRestarts=1", "runPolicy.backoffLimit=1",
                                        command(tmp_path, total, 0.1)))
    try:
        wait_for_checkpoint(tmp_path, job_name, 2 * CHECKPOINT_EVERY)
        victim = training_process(job_name, 1)
        os.kill(victim, signal.SIGKILL)
        victim = wait_for_new_process(job_name, 1, victim)
        step = wait_for_checkpoint(tmp_path, job_name, 4 * CHECKPOINT_EVERY)
        os.kill(victim, signal.SIGKILL)
        output, _ = run.communicate(timeout=300)
        assert run.returncode == 0, output[-3000:]
        assert "restarting all workers (1/1)" in output, output[-3000:]
        assert re.search(r"restarts: 1   in-place restarts: 1 ", output), output[-3000:]
        resumed = [int(s) for s in re.findall(r"rank 0: resumed from step (\d+)", output)]
        assert len(resumed) == 2 and resumed[-1] >= step, (resumed, step)
        assert "recovered by a group restart" in output, output[-3000:]
        final_ranks(tmp_path, total)
        assert wait_until_gone(job_name, 5) == []
    finally:
        run.kill()
