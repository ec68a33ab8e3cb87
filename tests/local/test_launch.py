"""`python -m tandem.launch` in real processes: torch DDP over gloo, TF MultiWorkerMirrored,
and the process rules (signals forwarded, nothing left behind, exit codes passed through).

Each test starts one launcher per worker with the env contract a rendered pod would get,
on 127.0.0.1 with free ports, in a network namespace of the group's own, exactly as the local
executor does (and as a pod has its own): on this host's network the group met every other
process's ports (a coordinator port handed to another process after free_ports() closed it
fails the group) and the host's resolver (torch's store looks up every peer's name).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, Sequence

import pytest

from tandem._sys import proctree
from tandem._sys.netns import PrivateNetwork
from tandem._sys.ports import free_ports
from tests.support.processes import alive, descendants, kill, wait_gone

pytestmark = pytest.mark.local

REPO = Path(__file__).resolve().parents[2]
WAIT = 150  # seconds: generous for 2 cores; a healthy run takes 5-15 s


def contract(framework: str, strategy: str, workers: int, index: int, ports: Sequence[int], job: str) -> dict[str, str]:
    """The TANDEM_* variables for worker `index`, as the local executor sets them."""
    return {
        "TANDEM_JOB": job,
        "TANDEM_NAMESPACE": "default",
        "TANDEM_FRAMEWORK": framework,
        "TANDEM_STRATEGY": strategy,
        "TANDEM_WORKERS": str(workers),
        "TANDEM_WORKER_INDEX": str(index),
        "TANDEM_PROCS_PER_WORKER": "1",
        "TANDEM_COORDINATOR": "127.0.0.1",
        "TANDEM_PORT": str(ports[0]),
        "TANDEM_WORKER_HOSTS": ",".join(f"127.0.0.1:{p}" for p in ports),
        "TANDEM_METRICS_ADDRESS": "",
    }


class Group:
    """W launcher processes of one job; output of worker i in <tmp>/launcher<i>.log."""

    def __init__(self, tmp: Path, framework: str, strategy: str, command: Sequence[str], workers: int = 2) -> None:
        self.tmp = tmp
        ports = free_ports(workers)  # free in the group's namespace too: nothing else runs there
        self.network = PrivateNetwork()
        self.network.start()  # where the system allows none, the group runs on this host's network
        self.procs: list[subprocess.Popen] = []
        self.seen: set[int] = set()  # descendants ever observed, killed at teardown if still alive
        self.logs = [tmp / f"launcher{i}.log" for i in range(workers)]
        for i in range(workers):
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "operator"), env.get("PYTHONPATH")]))
            env["PYTHONFAULTHANDLER"] = "1"  # SIGABRT prints every thread's stack: see stacks()
            env.update(contract(framework, strategy, workers, i, ports, tmp.name[-40:]))
            with open(self.logs[i], "wb") as log:
                argv = self.network.wrap([sys.executable, "-m", "tandem.launch", "--", *command])
                self.procs.append(subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT))

    def wait(self, timeout: float = WAIT) -> list[int]:
        """The launchers' exit codes; past the timeout, a failure that shows every log's tail
        with the stacks of the processes still running (a bare TimeoutExpired, then the tails
        alone, said nothing of where the group hung)."""
        deadline = time.monotonic() + timeout
        for i, proc in enumerate(self.procs):
            try:
                proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.stacks()
                tails = "".join(f"\n--- launcher {j} ---\n{self.log(j)[-8000:]}" for j in range(len(self.procs)))
                raise AssertionError(f"launcher {i} still running after {timeout:.0f} s:{tails}") from None
        return [p.returncode for p in self.procs]

    def stacks(self) -> None:
        """Every process below the launchers prints its threads' Python stacks to its launcher's
        log and ends (PYTHONFAULTHANDLER turns SIGABRT into that), the deepest first: a process
        that ends takes its children with it (PDEATHSIG) before they could print theirs."""
        launchers = {p.pid for p in self.procs}
        parents = proctree.parents()

        def depth(pid: int) -> int:  # 1: a launcher's child (torchrun), 2: torchrun's ranks
            up = parents.get(pid, 0)
            return 1 if up in launchers or up <= 1 else 1 + depth(up)

        below = [pid for i in range(len(self.procs)) for pid in self.tree(i)]
        for level in sorted({depth(pid) for pid in below}, reverse=True):
            running = [pid for pid in below if depth(pid) == level and alive(pid)]
            proctree.signal_all(running, signal.SIGABRT)
            wait_gone(running, timeout=10)

    def log(self, i: int) -> str:
        return self.logs[i].read_text(errors="replace")

    def wait_for_output(self, i: int, text: str, timeout: float = WAIT) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log(i):
            assert time.monotonic() < deadline, f"{text!r} not in launcher {i} output:\n{self.log(i)[-3000:]}"
            assert self.procs[i].poll() is None, f"launcher {i} exited {self.procs[i].returncode}:\n{self.log(i)[-3000:]}"
            time.sleep(0.1)

    def tree(self, i: int) -> list[int]:
        """Live descendants of launcher i, remembered for teardown."""
        pids = descendants(self.procs[i].pid)
        self.seen.update(pids)
        return pids

    def kill(self) -> None:
        """Launchers first, then any descendant that outlived them (a failing test's leftovers)."""
        for i, proc in enumerate(self.procs):
            if proc.poll() is None:
                self.tree(i)
                proc.kill()
                proc.wait(timeout=10)
        kill([pid for pid in self.seen if alive(pid)])
        self.network.stop()


@pytest.fixture
def groups() -> Iterator[list[Group]]:
    """Every group a test starts is SIGKILLed at the end (its children follow by PDEATHSIG)."""
    started: list[Group] = []
    yield started
    for group in started:
        group.kill()


def ddp(tmp: Path, *extra: str) -> list[str]:
    return [
        "python", "jobs/train_ddp.py", "--steps", "40", "--checkpoint-every", "10", "--log-every", "5",
        "--checkpoint-dir", str(tmp / "ckpt"), "--output-dir", str(tmp / "out"), *extra,
    ]  # fmt: skip


def keras(tmp: Path, *extra: str) -> list[str]:
    return [
        "python", "jobs/train_keras.py", "--epochs", "2", "--steps-per-epoch", "20",
        "--checkpoint-dir", str(tmp / "ckpt"), "--output-dir", str(tmp / "out"), *extra,
    ]  # fmt: skip


def _train_two(tmp_path: Path, groups: list[Group], framework: str, strategy: str, command: list[str],
               output: str) -> tuple[Group, list[dict]]:
    """Two launchers train to the end; both workers' outputs (`<output><i>.json`) show 40 steps
    and the same weights."""
    group = Group(tmp_path, framework, strategy, command)
    groups.append(group)
    assert group.wait() == [0, 0], group.log(0)[-3000:] + group.log(1)[-3000:]
    outputs = [json.loads((tmp_path / "out" / f"{output}{i}.json").read_text()) for i in (0, 1)]
    assert outputs[0]["checksum"] == outputs[1]["checksum"]
    assert [o["steps"] for o in outputs] == [40, 40]
    return group, outputs


def test_ddp_two_launchers_train_identical_weights(tmp_path: Path, groups: list[Group]) -> None:
    group, ranks = _train_two(tmp_path, groups, "pytorch", "ddp", ddp(tmp_path), "rank")
    port = group.log(0).split("--master-port=")[1].split()[0]
    for rank, seen in enumerate(r["env"] for r in ranks):
        # torchrun's documented worker variables
        assert seen == {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "WORLD_SIZE": "2", "RANK": str(rank), "LOCAL_RANK": "0"}
    assert group.log(1).startswith("tandem.launch: worker 1/2 pytorch ddp -> torchrun --nnodes=2 --node-rank=1")


def test_tf_two_launchers_train_identical_weights(tmp_path: Path, groups: list[Group]) -> None:
    _, workers = _train_two(tmp_path, groups, "tensorflow", "multi-worker-mirrored", keras(tmp_path), "worker")
    hosts = workers[0]["tf_config"]["cluster"]["worker"]
    assert len(set(hosts)) == 2 and all(h.startswith("127.0.0.1:") for h in hosts)
    for i, w in enumerate(workers):
        assert w["tf_config"] == {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": i}}


def test_tf_crash_and_restart_resumes_to_the_same_weights(tmp_path: Path, groups: list[Group]) -> None:
    """Worker 1 exits 3 at step 30; its launcher exits 3; the restarted group resumes from step 20
    and ends with exactly the weights of an uninterrupted run (deterministic data order)."""
    crash = ("--crash-at-step", "30", "--crash-rank", "1", "--crash-exit-code", "3", "--checkpoint-every", "10")
    first = Group(tmp_path, "tensorflow", "multi-worker-mirrored", keras(tmp_path, *crash))
    groups.append(first)
    codes = first.wait()
    assert codes[1] == 3, first.log(1)[-3000:]
    assert codes[0] != 0
    second = Group(tmp_path, "tensorflow", "multi-worker-mirrored", keras(tmp_path, *crash))
    groups.append(second)
    assert second.wait() == [0, 0], second.log(0)[-3000:]
    assert "resumed from step 30" in second.log(0)
    resumed = json.loads((tmp_path / "out" / "worker0.json").read_text())["checksum"]

    clean_dir = tmp_path / "clean"
    clean_dir.mkdir()
    clean = Group(clean_dir, "tensorflow", "multi-worker-mirrored", keras(clean_dir, "--checkpoint-every", "10"))
    groups.append(clean)
    assert clean.wait() == [0, 0], clean.log(0)[-3000:]
    assert json.loads((clean_dir / "out" / "worker0.json").read_text())["checksum"] == resumed


def test_ddp_crash_exit_code_and_restart_to_the_same_weights(tmp_path: Path, groups: list[Group]) -> None:
    """Rank 1 exits 3 at step 15: its launcher exits 3. The restarted group resumes from the
    step-10 checkpoint and ends with exactly the weights of an uninterrupted run."""
    crash = ("--crash-at-step", "15", "--crash-rank", "1", "--crash-exit-code", "3")
    first = Group(tmp_path, "pytorch", "ddp", ddp(tmp_path, *crash))
    groups.append(first)
    codes = first.wait()
    assert codes[1] == 3, first.log(1)[-3000:]
    assert codes[0] != 0  # its peer is gone: gloo fails, torchrun reports that worker's code
    assert "injected crash at step 15" in first.log(1)
    second = Group(tmp_path, "pytorch", "ddp", ddp(tmp_path, *crash))
    groups.append(second)
    assert second.wait() == [0, 0], second.log(0)[-3000:]
    assert "resumed from step 10" in second.log(0) and "resumed from step 10" in second.log(1)
    resumed = json.loads((tmp_path / "out" / "rank0.json").read_text())["checksum"]

    clean_dir = tmp_path / "clean"
    clean_dir.mkdir()
    clean = Group(clean_dir, "pytorch", "ddp", ddp(clean_dir))
    groups.append(clean)
    assert clean.wait() == [0, 0], clean.log(0)[-3000:]
    assert json.loads((clean_dir / "out" / "rank0.json").read_text())["checksum"] == resumed


def test_ddp_non_python_command_runs_under_torchrun(tmp_path: Path, groups: list[Group]) -> None:
    group = Group(tmp_path, "pytorch", "ddp", ["sh", "-c", "echo rank=$RANK of $WORLD_SIZE at $MASTER_ADDR"], workers=1)
    groups.append(group)
    assert group.wait() == [0], group.log(0)[-3000:]
    assert "rank=0 of 1 at 127.0.0.1" in group.log(0)


def test_ddp_sigkilled_launchers_leave_no_process(tmp_path: Path, groups: list[Group]) -> None:
    group = Group(tmp_path, "pytorch", "ddp", ddp(tmp_path, "--steps", "100000", "--sleep-per-step", "0.02"))
    groups.append(group)
    for i in (0, 1):
        group.wait_for_output(i, "step 5/")
    tree = {i: group.tree(i) for i in (0, 1)}
    assert all(len(pids) >= 2 for pids in tree.values()), tree  # torchrun + its rank, per launcher
    for proc in group.procs:
        proc.send_signal(signal.SIGKILL)
    assert wait_gone([pid for pids in tree.values() for pid in pids]) == []


def test_ddp_sigterm_is_forwarded_and_reflected(tmp_path: Path, groups: list[Group]) -> None:
    group = Group(tmp_path, "pytorch", "ddp", ddp(tmp_path, "--steps", "100000", "--sleep-per-step", "0.02"))
    groups.append(group)
    for i in (0, 1):
        group.wait_for_output(i, "step 5/")
    tree = group.tree(0) + group.tree(1)
    for proc in group.procs:
        proc.send_signal(signal.SIGTERM)
    codes = group.wait(timeout=60)
    assert codes == [128 + signal.SIGTERM] * 2, group.log(0)[-2000:]
    assert wait_gone(tree) == []


#: The child's own line; the launcher's first line echoes the command, "'child up'" included.
CHILD_UP = "child up\n"


def sleeper(tmp: Path) -> Group:
    """One launcher running a plain Python child (no framework import: fast)."""
    code = "import time, sys; print('child up', flush=True); time.sleep(120)"
    return Group(tmp, "tensorflow", "multi-worker-mirrored", ["python", "-c", code], workers=1)


def test_sigkilled_launcher_takes_its_child(tmp_path: Path, groups: list[Group]) -> None:
    group = sleeper(tmp_path)
    groups.append(group)
    group.wait_for_output(0, CHILD_UP)
    (child,) = group.tree(0)
    assert os.getpgid(child) == child  # its own process group
    group.procs[0].send_signal(signal.SIGKILL)
    assert wait_gone([child], timeout=5) == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signal_is_forwarded_to_child(tmp_path: Path, groups: list[Group], signum: int) -> None:
    group = sleeper(tmp_path)
    groups.append(group)
    group.wait_for_output(0, CHILD_UP)
    (child,) = group.tree(0)
    group.procs[0].send_signal(signum)
    assert group.wait(timeout=15) == [128 + signum]
    assert not alive(child)


def test_child_exit_code_passes_through(tmp_path: Path, groups: list[Group]) -> None:
    group = Group(tmp_path, "tensorflow", "multi-worker-mirrored", ["python", "-c", "raise SystemExit(7)"], workers=1)
    groups.append(group)
    assert group.wait(timeout=30) == [7]
    assert "tandem.launch: worker 0/1 tensorflow multi-worker-mirrored -> python -c" in group.log(0)


def test_print_shows_the_launch_without_running(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO / "operator"))
    env.update(contract("tensorflow", "tpu", 2, 1, [8470, 8470], "tpu"))
    result = subprocess.run(
        [sys.executable, "-m", "tandem.launch", "--print", "--", "python", "x.py"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["argv"] == [sys.executable, "x.py"]
    assert shown["env"]["TPU_WORKER_ID"] == "1" and shown["env"]["TPU_WORKER_HOSTNAMES"] == "127.0.0.1,127.0.0.1"


def test_bad_contract_exits_2_with_one_line(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO / "operator"))
    env.update(contract("pytorch", "ddp", 2, 5, [29500, 29501], "bad"))
    result = subprocess.run(
        [sys.executable, "-m", "tandem.launch", "--", "python", "x.py"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tandem.launch: TANDEM_WORKER_INDEX"), result.stderr
