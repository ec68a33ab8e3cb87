"""In-place restarts, in milliseconds: torchrun's rendezvous flags from the contract, the FailJob
exit codes the launcher keeps out of them, the line a launcher tells a restart in, its counting
(one per rendezvous round), and the wrapper around torch's agent, driven by a stand-in agent."""

from __future__ import annotations

import io
from types import SimpleNamespace
from typing import Any

import pytest

from tandem.api import TrainingJob
from tandem.api.model import RunPolicy
from tandem.api.recoveries import Recoveries, recovery_text
from tandem.api.restart import fail_job_exit_codes
from tandem.api.status import MAX_RECOVERIES, RecoveryStatus, TrainingJobStatus, parse_recovery, recovery_record
from tandem.errors import SpecError
from tandem.launch import recovery
from tandem.launch.env import ContractError, build_launch, read_contract
from tandem.launch.torchrun import fail_job_codes
from tandem.render import render_one
from tests.support.specs import spec

from .test_launch_env import PY, contract_env, torchrun_flags


def flags(**extra: str) -> list[str]:
    extra.setdefault("TANDEM_IN_PLACE_RESTARTS", "1")  # dynamic rendezvous comes with in-place restarts
    return torchrun_flags(build_launch(contract_env(**extra), ["python", "t.py"], PY).argv)


# the launch

def test_worker_0_hosts_the_rendezvous_store_and_the_others_join_it() -> None:
    assert "--rdzv-conf=is_host=true" in flags(TANDEM_WORKER_INDEX="0")
    assert "--rdzv-conf=is_host=false" in flags(TANDEM_WORKER_INDEX="1")
    assert "--rdzv-endpoint=job-0.job.ns.svc:2222" in flags(TANDEM_WORKER_INDEX="0")


def test_without_in_place_restarts_the_rendezvous_stays_static() -> None:
    """Ranks are worker indices at any size, and the store is worker 0's launcher's as before."""
    static = flags(TANDEM_IN_PLACE_RESTARTS="0")
    assert "--rdzv-backend=static" in static and "--node-rank=1" in static and "--max-restarts=0" in static
    assert not any(flag.startswith(("--rdzv-id", "--rdzv-conf", "--local-addr")) for flag in static)


def test_the_in_place_budget_is_torchruns_max_restarts() -> None:
    assert "--max-restarts=1" in flags()
    assert "--max-restarts=3" in flags(TANDEM_IN_PLACE_RESTARTS="3")
    assert read_contract(contract_env(TANDEM_IN_PLACE_RESTARTS="3")).in_place_restarts == 3


def test_each_group_restart_rendezvouses_under_its_own_id() -> None:
    assert "--rdzv-id=job-0" in flags()
    assert "--rdzv-id=job-2" in flags(TANDEM_RESTART="2")


def test_on_a_cluster_the_local_address_is_the_pods_name() -> None:
    env = contract_env(TANDEM_WORKER_INDEX="1", TANDEM_IN_PLACE_RESTARTS="1")
    del env["TANDEM_WORKER_HOSTS"]
    assert "--local-addr=job-1.job.ns.svc" in torchrun_flags(build_launch(env, ["python", "t.py"], PY).argv)
    assert "--local-addr=127.0.0.1" in flags(TANDEM_WORKER_HOSTS="127.0.0.1:1,127.0.0.1:2")


@pytest.mark.parametrize(("name", "value"), [
    ("TANDEM_IN_PLACE_RESTARTS", "-1"), ("TANDEM_IN_PLACE_RESTARTS", "two"),
    ("TANDEM_FAIL_JOB_EXIT_CODES", "3,x"), ("TANDEM_FAIL_JOB_EXIT_CODES", "256"),
])
def test_a_bad_in_place_variable_is_refused_by_name(name: str, value: str) -> None:
    with pytest.raises(ContractError, match=name):
        read_contract(contract_env(**{name: value}))


def test_the_torchrun_wrapper_reads_the_fail_job_codes() -> None:
    assert read_contract(contract_env(TANDEM_FAIL_JOB_EXIT_CODES="2,3")).fail_job_exit_codes == (2, 3)
    assert fail_job_codes({"TANDEM_FAIL_JOB_EXIT_CODES": "2,3"}) == (2, 3)
    assert fail_job_codes({}) == ()


# the model and the rendered contract

def test_in_place_restarts_default_to_none_and_may_not_be_negative() -> None:
    assert RunPolicy().in_place_restarts == 0
    with pytest.raises(SpecError, match="inPlaceRestarts"):
        TrainingJob.from_dict(spec(runPolicy={"inPlaceRestarts": -1}))


def policy(*rules: dict[str, Any]) -> RunPolicy:
    return RunPolicy.model_validate({"inPlaceRestarts": 2, "failurePolicy": {"rules": list(rules)}})


def test_fail_job_exit_codes_are_what_the_rules_fail_at_once() -> None:
    assert fail_job_exit_codes(policy()) == ()
    assert fail_job_exit_codes(policy({"action": "FailJob", "onExitCodes": {"operator": "In", "values": [2, 3]}})) == (2, 3)
    # An earlier rule wins, as in judge(): 2 is ignored, so only 3 fails the job at once.
    assert fail_job_exit_codes(policy(
        {"action": "Ignore", "onExitCodes": {"operator": "In", "values": [2]}},
        {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [2, 3]}})) == (3,)
    assert fail_job_exit_codes(policy({"action": "FailJob", "onExitCodes": {"operator": "NotIn", "values": [137]}})) == \
        tuple(c for c in range(1, 256) if c != 137)
    assert fail_job_exit_codes(policy({"action": "FailJob", "onReasons": ["Hung"]})) == ()


def worker_env(document: dict[str, Any]) -> dict[str, str]:
    job = render_one(TrainingJob.from_dict(document), "Job")
    return {e["name"]: e.get("value", "") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_the_rendered_pod_carries_the_budget_and_the_fail_job_codes() -> None:
    rules = {"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [2]}}]}
    env = worker_env(spec(runPolicy={"inPlaceRestarts": 2, "failurePolicy": rules}))
    assert env["TANDEM_IN_PLACE_RESTARTS"] == "2"
    assert env["TANDEM_FAIL_JOB_EXIT_CODES"] == "2"
    without = worker_env(spec(runPolicy={"failurePolicy": rules}))
    assert without["TANDEM_IN_PLACE_RESTARTS"] == "0"
    assert "TANDEM_FAIL_JOB_EXIT_CODES" not in without  # no in-place restart to keep them out of


def test_warm_restarts_false_turns_the_workers_warm_interpreter_off() -> None:
    """The warm interpreter's memory counts against the worker's limit: the spec can refuse it."""
    from tandem.launch.warm import wanted

    warm = worker_env(spec(runPolicy={"inPlaceRestarts": 2}))
    cold = worker_env(spec(runPolicy={"inPlaceRestarts": 2, "warmRestarts": False}))
    assert "TANDEM_WARM" not in warm and wanted(warm)
    assert cold["TANDEM_WARM"] == "0" and not wanted(cold)


# the line and its counting

def test_a_recovery_line_reads_back() -> None:
    line = recovery.recovery_line(recovery.recovery_record(1, 3, 137, "SIGKILL", 2.5, 4, 1_800_000_000.25, 2))
    round_, at, record = parse_recovery("[worker 1] " + line) or (None, None, None)
    assert (round_, at) == (4, 1_800_000_000.25)
    assert record == RecoveryStatus(worker=1, rank=3, exit_code=137, reason="SIGKILL", recovered="InPlace",
                                    seconds=2.5, restart=2, round=4, time="2027-01-15T08:00:00Z")


@pytest.mark.parametrize("line", [
    "rank 0: step 10/100", "tandem.recovery: not json", 'tandem.recovery: {"worker": 1}',
    'tandem.recovery: {"worker": -1, "recovered": "InPlace", "round": 1, "failedAt": 1}',
])
def test_other_lines_are_not_recoveries(line: str) -> None:
    assert parse_recovery(line) is None


def told(worker: int, code: int, at: float, restart: int = 0) -> RecoveryStatus:
    return RecoveryStatus(worker=worker, exit_code=code, reason="Error", recovered="InPlace", restart=restart,
                          time=str(at))


def test_one_round_is_one_restart_told_by_its_earliest_failure() -> None:
    recoveries = Recoveries()
    recoveries.told_in_place(1, 10.5, told(0, 1, 10.5))  # the peer's broken collective, told first
    recoveries.told_in_place(1, 10.0, told(1, 137, 10.0))  # the process that was killed
    assert recoveries.in_place == 1
    assert [(r.worker, r.exit_code) for r in recoveries.latest] == [(1, 137)]
    recoveries.told_in_place(2, 20.0, told(1, 137, 20.0))
    recoveries.told_in_place(1, 30.0, told(1, 137, 30.0, restart=1))  # the same round number in a new group
    assert recoveries.in_place == 3


def test_the_recoveries_kept_are_bounded() -> None:
    recoveries = Recoveries()
    for round_ in range(MAX_RECOVERIES + 5):
        recoveries.told_in_place(round_, float(round_), told(0, 1, float(round_)))
    assert recoveries.in_place == MAX_RECOVERIES + 5
    assert len(recoveries.latest) == MAX_RECOVERIES and recoveries.latest[0].time == "5.0"
    status = TrainingJobStatus(in_place_restarts=recoveries.in_place, recoveries=recoveries.latest)
    assert status.model_dump(by_alias=True)["inPlaceRestarts"] == MAX_RECOVERIES + 5


def test_the_run_table_says_how_each_failure_was_recovered() -> None:
    record = RecoveryStatus(worker=1, rank=1, exit_code=137, reason="SIGKILL", recovered="InPlace", seconds=3.21)
    assert recovery_text(record) == "recovered in place in 3.2 s: worker 1 rank 1 exit 137 (SIGKILL), group #0"
    group = RecoveryStatus(worker=0, exit_code=1, reason="Error", recovered="GroupRestart", restart=2)
    assert recovery_text(group) == "recovered by a group restart: worker 0 exit 1 (Error), group #2"


# the wrapper around torch's agent

FAILED, HEALTHY = "FAILED", "HEALTHY"


class ChildFailed(Exception):
    def __init__(self, name: str, failures: dict[int, Any]):
        super().__init__(name)
        self.failures = failures


def agent_class() -> type:
    """A stand-in for torch's LocalElasticAgent: what recovery.watch wraps and reads."""

    class Agent:
        def __init__(self, failures: dict[int, Any]):
            self.failures = failures
            self.restarted = self.stopped = 0
            self._remaining_restarts = 1
            handler = SimpleNamespace(_state_holder=SimpleNamespace(state=SimpleNamespace(round=7)))
            self._worker_group = SimpleNamespace(
                state=FAILED, spec=SimpleNamespace(max_restarts=2, rdzv_handler=handler, get_entrypoint_name=lambda: "guard"))

        def _monitor_workers(self, group: Any) -> Any:
            return SimpleNamespace(failures=self.failures)

        def _restart_workers(self, group: Any) -> None:
            self.restarted += 1

        def _stop_workers(self, group: Any) -> None:
            self.stopped += 1

    return Agent


def failure(exitcode: int, timestamp: int, signal_name: str = "") -> Any:
    return SimpleNamespace(exitcode=exitcode, timestamp=timestamp, signal_name=lambda: signal_name)


def drive(failures: dict[int, Any], fail_job: tuple[int, ...] = (), state: str = FAILED) -> tuple[Any, str]:
    cls, out = agent_class(), io.StringIO()
    recovery.watch(cls, {FAILED}, ChildFailed, 1, fail_job, out)
    agent = cls(failures)
    group = agent._worker_group
    group.state = state
    agent._monitor_workers(group)
    agent._restart_workers(group)
    return agent, out.getvalue()


def test_a_restart_after_a_failure_is_told_with_its_first_failure() -> None:
    agent, out = drive({3: failure(1, 12), 2: failure(-9, 11, "SIGKILL")})
    assert agent.restarted == 1
    told_ = parse_recovery(out)
    assert told_ is not None and told_[0] == 7
    assert (told_[2].worker, told_[2].rank, told_[2].exit_code, told_[2].reason) == (1, 2, 137, "SIGKILL")


def test_a_restart_for_a_peer_is_not_told() -> None:
    agent, out = drive({}, state=HEALTHY)
    assert agent.restarted == 1 and out == ""


def test_a_fail_job_exit_code_is_not_restarted_in_place() -> None:
    with pytest.raises(ChildFailed) as raised:
        drive({0: failure(2, 5)}, fail_job=(2,))
    assert 0 in raised.value.failures
    agent, _ = drive({0: failure(3, 5)}, fail_job=(2,))
    assert agent.restarted == 1 and agent.stopped == 0


def test_ranks_follow_worker_indices_not_pids() -> None:
    """The rendezvous sorts its nodes to give ranks: with the same address (a local run), the
    launcher's node descriptions sort by worker index, whatever the agents' pids."""
    from torch.distributed.elastic.rendezvous import dynamic_rendezvous as rendezvous

    from tandem.launch.torchrun import rank_by_worker_index

    original = rendezvous.DynamicRendezvousHandler._node_desc_generator
    try:
        nodes = []
        for worker in (1, 0, 2):
            rank_by_worker_index(worker)
            nodes.append((worker, rendezvous.DynamicRendezvousHandler._node_desc_generator.generate("127.0.0.1")))
        assert [worker for worker, _ in sorted(nodes, key=lambda pair: pair[1])] == [0, 1, 2]
    finally:
        rendezvous.DynamicRendezvousHandler._node_desc_generator = original


def test_the_restarts_told_reach_tell_with_their_group() -> None:
    cls, out, told_ = agent_class(), io.StringIO(), []
    recovery.watch(cls, {FAILED}, ChildFailed, 1, (), out, tell=told_.append, restart_number=2)
    agent = cls({1: failure(3, 5)})
    agent._monitor_workers(agent._worker_group)
    agent._restart_workers(agent._worker_group)
    (record,) = told_
    assert (record["worker"], record["rank"], record["exitCode"], record["round"], record["restart"]) == (1, 1, 3, 7, 2)
    assert parse_recovery(out.getvalue()) == recovery_record(record)  # the line and the post say one thing


# counting on a cluster: the operator reads every record again at each read

def at_round(worker: int, round_: int, at: float, restart: int = 0) -> tuple[int, float, RecoveryStatus]:
    told_ = recovery_record(recovery.recovery_record(worker, worker, 137, "SIGKILL", 1.0, round_, at, restart))
    assert told_ is not None
    return told_


def test_reading_the_same_records_again_counts_nothing_new() -> None:
    first = Recoveries.from_status(0, [])
    assert [r.round for r in first.told([at_round(0, 1, 1e9 + 5), at_round(1, 1, 1e9)])] == [1]
    assert first.in_place == 1 and first.latest[0].worker == 1  # the earliest failure of the round
    again = Recoveries.from_status(first.in_place, first.latest)
    assert again.told([at_round(0, 1, 1e9 + 5), at_round(1, 1, 1e9), at_round(1, 2, 1e9 + 60)])[0].round == 2
    assert again.in_place == 2 and [r.round for r in again.latest] == [1, 2]


def test_a_restart_that_left_status_is_not_counted_twice() -> None:
    """status keeps MAX_RECOVERIES records, the collector more: a round at or before the newest in
    status was counted, even when its record is no longer there."""
    recoveries = Recoveries.from_status(0, [])
    recoveries.told([at_round(0, r, 1e9 + r) for r in range(1, MAX_RECOVERIES + 6)])
    assert recoveries.in_place == MAX_RECOVERIES + 5 and recoveries.latest[0].round == 6
    later = Recoveries.from_status(recoveries.in_place, recoveries.latest)
    fresh = later.told([at_round(0, r, 1e9 + r) for r in range(1, MAX_RECOVERIES + 7)])
    assert [r.round for r in fresh] == [MAX_RECOVERIES + 6] and later.in_place == MAX_RECOVERIES + 6
    # A new group starts its rounds again at 1: a later (group, round), so it counts.
    assert later.told([at_round(1, 1, 2e9, restart=1)]) and later.in_place == MAX_RECOVERIES + 7


def test_tandem_get_says_how_each_failure_was_recovered() -> None:
    from rich.console import Console

    from tandem.kube.table import progress_line, status_table

    record = RecoveryStatus(worker=1, rank=1, exit_code=3, reason="Error", recovered="InPlace", seconds=2.0, round=1)
    status = TrainingJobStatus(phase="Running", restarts=0, in_place_restarts=1, recoveries=[record])
    console = Console(width=200, record=True)
    console.print(status_table("demo", status))
    text = console.export_text()
    assert "0 of the group, 1 in place" in text
    assert "recovered in place in 2.0 s: worker 1 rank 1 exit 3 (Error), group #0" in text
    assert "in place 1" in progress_line("demo", status)


# the launcher's teller

def test_the_teller_retries_until_the_gateway_takes_a_record_and_drops_a_refused_one() -> None:
    from tandem.launch.teller import Refused, Teller

    answers: list[BaseException | None] = [OSError("refused"), OSError("503"), None, Refused("403"), None]
    sent: list[int] = []
    waits: list[float] = []

    def send(url: str, token: str, record: Any) -> None:
        answer = answers.pop(0)
        if answer is not None:
            raise answer
        sent.append(record["round"])

    teller = Teller("http://gateway/v1/jobs/ns/job/recoveries", "t", send=send, wait=waits.append)
    for round_ in (1, 2, 3):
        teller.tell({"round": round_})
    assert teller.flush(5.0)
    assert sent == [1, 3] and len(waits) == 2  # round 1 after two failures; round 2 refused and dropped
    assert waits[0] <= waits[1] * 2  # backing off


def test_without_a_gateway_or_a_token_nothing_is_told() -> None:
    from tandem.launch.teller import Teller

    env = {"TANDEM_METRICS_ADDRESS": "http://gw:8266/", "TANDEM_METRICS_TOKEN": "t", "TANDEM_JOB": "j", "TANDEM_NAMESPACE": "ns"}
    teller = Teller.from_env(env)
    assert teller is not None and teller.url == "http://gw:8266/v1/jobs/ns/j/recoveries"
    for missing in ("TANDEM_METRICS_ADDRESS", "TANDEM_METRICS_TOKEN", "TANDEM_JOB"):
        assert Teller.from_env({k: v for k, v in env.items() if k != missing}) is None


def test_a_small_group_polls_its_rendezvous_ten_times_a_second_a_large_one_as_torch() -> None:
    from tandem.launch.torchrun import MAX_STATE_READS_PER_SECOND, TORCH_POLL_SECONDS, rendezvous_poll_seconds

    assert [rendezvous_poll_seconds(n) for n in (1, 2, 10, 50, 100, 1000)] == [0.1, 0.1, 0.1, 0.5, 1.0, 1.0]
    for workers in range(1, 2000):
        poll = rendezvous_poll_seconds(workers)
        assert poll <= TORCH_POLL_SECONDS
        assert workers / poll <= max(MAX_STATE_READS_PER_SECOND, workers / TORCH_POLL_SECONDS) + 1e-9


def test_only_the_poll_for_peers_is_shortened() -> None:
    """torch's one fixed delay is its poll; its random ones (a first round's skew, the backoff after
    a failed write) are (low, high) pairs and stay as they are."""
    from tandem.launch.torchrun import polled

    slept: list[Any] = []

    def sleep(seconds: Any) -> None:
        slept.append(seconds)

    wait = polled(sleep, 0.1)
    wait(seconds=1)
    wait(seconds=(0, 0.3))
    wait(seconds=0.5)
    assert slept == [0.1, (0, 0.3), 0.5]


def test_torchs_rendezvous_polls_where_the_launcher_shortens_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """The torch internals the poll relies on: the fixed one-second sleep of a waiting agent and the
    state cache of the same age; with the poll installed, two agents still meet in one round, and
    each one's state is cached for the poll, not a second."""
    import inspect
    import threading

    import torch.distributed as dist
    from torch.distributed.elastic.rendezvous import dynamic_rendezvous as rendezvous
    from torch.distributed.elastic.rendezvous.c10d_rendezvous_backend import C10dRendezvousBackend

    from tandem.launch.torchrun import TORCH_POLL_SECONDS, poll_rendezvous_every

    fixed = f"_delay(seconds={TORCH_POLL_SECONDS})"  # the poll, and torch's only fixed delay there
    assert fixed in inspect.getsource(rendezvous._DistributedRendezvousOpExecutor.run)
    assert inspect.getsource(rendezvous).count(fixed) == 1
    default = inspect.signature(rendezvous._BackendRendezvousStateHolder.__init__).parameters["cache_duration"].default
    assert default == TORCH_POLL_SECONDS
    monkeypatch.setattr(rendezvous, "_delay", rendezvous._delay)
    monkeypatch.setattr(rendezvous, "_BackendRendezvousStateHolder", rendezvous._BackendRendezvousStateHolder)
    monkeypatch.setenv("TORCH_DISABLE_SHARE_RDZV_TCP_STORE", "1")  # as the launcher's env: no store server here
    poll_rendezvous_every(0.1)
    store = dist.HashStore()
    handlers = [rendezvous.DynamicRendezvousHandler.from_backend(
        "run", store, C10dRendezvousBackend(store, "run"), 2, 2, "127.0.0.1") for _ in range(2)]
    assert [h._state_holder._cache_duration for h in handlers] == [0.1, 0.1]
    met: list[tuple[int, int]] = []

    def meet(handler: Any) -> None:
        info = handler.next_rendezvous()
        met.append((info.rank, info.world_size))

    threads = [threading.Thread(target=meet, args=(handler,)) for handler in handlers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for handler in handlers:
        handler.shutdown()
    assert sorted(met) == [(0, 2), (1, 2)]
