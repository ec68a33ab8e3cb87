"""The launcher waits for the coordinator's name before the framework looks it up (worker 0's
pod may start long after the others: its DNS record does not exist until then)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "operator"))

from tandem.launch import __main__ as launcher, process
from tandem.launch.env import build_launch
from tandem.launch.resolve import resolves, wait_for_name

from .test_launch_env import PY, contract_env


class Clock:
    """A fake monotonic clock that sleep() advances."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_waits_until_the_name_resolves() -> None:
    clock = Clock()
    answers = iter([False, False, False, True])
    assert wait_for_name("job-0.job.ns.svc", timeout=10, interval=0.5, lookup=lambda host: next(answers),
                         clock=clock, sleep=clock.sleep)
    assert clock.slept == [0.5, 0.5, 0.5]


def test_gives_up_at_the_deadline() -> None:
    clock = Clock()
    assert not wait_for_name("never", timeout=3, interval=1, lookup=lambda host: False, clock=clock, sleep=clock.sleep)
    assert clock.now == 3


def test_an_address_or_localhost_resolves_at_once_and_a_missing_name_does_not() -> None:
    assert resolves("127.0.0.1") and resolves("localhost")
    assert not resolves("no-such-worker-0.no-such-job.invalid")


def test_only_a_group_waits_for_its_coordinator() -> None:
    assert build_launch(contract_env(workers=2, index=1), ["python", "train.py"], PY).resolve_first == "job-0.job.ns.svc"
    tensorflow = contract_env("tensorflow", "multi-worker-mirrored")
    assert build_launch(tensorflow, ["python", "t.py"], PY).resolve_first == "job-0.job.ns.svc"
    assert build_launch(contract_env(workers=1, index=0), ["python", "train.py"], PY).resolve_first == ""


def test_launcher_fails_with_one_line_when_the_coordinator_never_resolves(monkeypatch, capsys) -> None:
    monkeypatch.setattr(launcher, "wait_for_name", lambda host: False)
    ran = []
    monkeypatch.setattr(process, "run", lambda argv, env: ran.append(argv) or 0)
    for key, value in contract_env().items():
        monkeypatch.setenv(key, value)
    assert launcher.main(["--", "python", "train.py"]) == 1
    assert not ran
    assert "coordinator job-0.job.ns.svc did not resolve" in capsys.readouterr().err


def test_launcher_runs_once_the_coordinator_resolves(monkeypatch) -> None:
    waited, ran = [], []
    monkeypatch.setattr(launcher, "wait_for_name", lambda host: waited.append(host) or True)
    monkeypatch.setattr(process, "run", lambda argv, env: ran.append(argv) or 0)
    for key, value in contract_env().items():
        monkeypatch.setenv(key, value)
    assert launcher.main(["--", "python", "train.py"]) == 0
    assert waited == ["job-0.job.ns.svc"] and ran
