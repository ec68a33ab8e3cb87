"""Elastic PyTorch workers, in milliseconds: the range's validation, --workers MIN:MAX, the
rendered pods and torchrun's --nnodes, and the operator's in-place resize of the Job (and the pods
a scale-down lets go, which are not lost workers)."""

from __future__ import annotations

import io
from types import SimpleNamespace
from typing import Any

import click
import pytest

from tandem.api import TrainingJob
from tandem.api.elastic import worker_range
from tandem.api.load import apply_overrides
from tandem.api.rejoin import scaled_away
from tandem.cli.run import workers_overrides
from tandem.controller.observed import JobState, Observed, PodState
from tandem.errors import SpecError
from tandem.launch import recovery
from tandem.launch.env import ContractError, build_launch, read_contract
from tandem.local.elastic import REJOIN_WAIT_SECONDS, ElasticRun, parse_world
from tandem.local.sweep import point_overrides
from tandem.render import render_one
from tests.support.specs import spec

from .test_launch_env import PY, contract_env, torchrun_flags
from .test_reconcile import POLICY, step, training_job

IN_PLACE = {"inPlaceRestarts": 2}


def elastic(**changes: Any) -> dict[str, Any]:
    """The base spec made elastic: 1..3 workers, in-place restarts on."""
    return spec(**{"minWorkers": 1, "maxWorkers": 3, "runPolicy": IN_PLACE, **changes})


def refused(document: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(SpecError) as error:
        TrainingJob.from_dict(document)
    return dict(error.value.problems)


# the spec

def test_a_fixed_job_needs_all_its_workers() -> None:
    job = TrainingJob.from_dict(spec(workers=3))
    assert not job.spec.elastic
    assert (job.spec.min_worker_count, job.spec.worker_count, job.spec.max_worker_count) == (3, 3, 3)


def test_an_elastic_job_wants_max_workers_unless_told_and_trains_on_with_min() -> None:
    job = TrainingJob.from_dict(elastic(workers=None))
    assert job.spec.elastic
    assert (job.spec.min_worker_count, job.spec.worker_count, job.spec.max_worker_count) == (1, 3, 3)
    assert TrainingJob.from_dict(elastic(workers=2)).spec.worker_count == 2


def test_workers_outside_the_range_is_refused_naming_workers() -> None:
    problems = refused(elastic(workers=4))
    assert "1..3" in problems["spec.workers"]


@pytest.mark.parametrize(("changes", "field", "words"), [
    ({"maxWorkers": None}, "spec.workers", "both minWorkers and maxWorkers"),
    ({"minWorkers": 4, "workers": 4}, "spec.workers", "minWorkers (4) must be <= maxWorkers (3)"),
    ({"framework": "tensorflow", "strategy": "multi-worker-mirrored"}, "spec.workers", "has no elastic mode"),
    ({"runPolicy": None}, "spec.runPolicy.inPlaceRestarts", "must be >= 1 for an elastic job"),
])
def test_what_an_elastic_job_needs_is_said_with_the_fix(changes: dict[str, Any], field: str, words: str) -> None:
    problems = refused(elastic(**changes))
    assert words in problems[field], problems


def test_a_tpu_slice_is_not_elastic() -> None:
    document = spec(framework="tensorflow", strategy="tpu", workers=None, minWorkers=1, maxWorkers=2,
                    tpu={"accelerator": "tpu-v5-lite-podslice", "topology": "2x4"})
    problems = refused(document)
    assert any("elastic" in message for message in problems.values()), problems


# tandem run --workers

def test_workers_option_takes_a_count_or_a_range() -> None:
    assert worker_range("2") == (2, 2, 2)
    assert worker_range("1:2") == (1, 2, 2)
    assert workers_overrides("2") == ["spec.workers=2"]
    assert workers_overrides("1:2") == ["spec.minWorkers=1", "spec.maxWorkers=2", "spec.workers=2"]
    assert workers_overrides(None) == []
    for bad in ("0", "3:2", "a:b", "1:"):
        with pytest.raises(click.BadParameter):
            workers_overrides(bad)


def test_a_bench_point_runs_a_fixed_count_even_outside_an_elastic_range() -> None:
    """`tandem bench --workers 1,2,4` of a 1..3 job: each point is N workers from start to end."""
    for count in (1, 4):
        job = TrainingJob.from_dict(apply_overrides(elastic(), point_overrides(count)))
        assert (job.spec.worker_count, job.spec.min_workers, job.spec.max_workers) == (count, None, None)
        assert job.spec.metrics.enabled


# the pods and torchrun

def pod_env(document: dict[str, Any]) -> dict[str, str]:
    job = render_one(TrainingJob.from_dict(document), "Job")
    return {e["name"]: e.get("value", "") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_the_job_runs_the_desired_count_and_every_pod_is_laid_out_for_the_range() -> None:
    """TANDEM_WORKERS is maxWorkers whatever the desired count: a scale changes no pod's environment."""
    document = elastic(workers=2)
    job = render_one(TrainingJob.from_dict(document), "Job")
    assert job["spec"]["parallelism"] == job["spec"]["completions"] == 2
    env = pod_env(document)
    assert (env["TANDEM_WORKERS"], env["TANDEM_MIN_WORKERS"]) == ("3", "1")
    assert pod_env(elastic(workers=3)) == env
    assert "TANDEM_MIN_WORKERS" not in pod_env(spec())


def test_torchrun_rendezvous_takes_min_to_max_agents() -> None:
    env = contract_env(workers=3, TANDEM_MIN_WORKERS="1", TANDEM_IN_PLACE_RESTARTS="2")
    flags = torchrun_flags(build_launch(env, ["python", "t.py"], PY).argv)
    assert "--nnodes=1:3" in flags and "--rdzv-backend=c10d" in flags
    fixed = torchrun_flags(build_launch(contract_env(workers=3, TANDEM_IN_PLACE_RESTARTS="2"), ["python", "t.py"],
                                        PY).argv)
    assert "--nnodes=3" in fixed


def test_min_workers_above_workers_is_refused_by_name() -> None:
    with pytest.raises(ContractError, match="TANDEM_MIN_WORKERS"):
        read_contract(contract_env(workers=2, TANDEM_MIN_WORKERS="3"))


# the operator

def running(restart: int, count: int) -> list[PodState]:
    return [PodState(name=f"demo-{i}-x", index=i, restart=restart, phase="Running", ready=True) for i in range(count)]


def test_a_scaled_elastic_job_resizes_its_job_in_place() -> None:
    obj, _ = step(training_job(**elastic(workers=3)["spec"]), Observed())
    obj, actions = step(obj, Observed(True, JobState(0, parallelism=3), running(0, 3), network_policy=POLICY))
    assert actions.resize_job is None
    assert (obj["status"]["desiredWorkers"], obj["status"]["currentWorkers"]) == (3, 3)
    obj["spec"]["workers"] = 2  # kubectl scale tj/demo --replicas=2
    obj, actions = step(obj, Observed(True, JobState(0, parallelism=3), running(0, 3), network_policy=POLICY))
    assert actions.resize_job is not None and actions.resize_job.workers == 2
    assert actions.delete_job is None and actions.create == [] and obj["status"]["restarts"] == 0
    assert obj["status"]["desiredWorkers"] == 2 and "Scaled" in [e.reason for e in actions.events]


def let_go(index: int) -> PodState:
    """The pod of an index a scale-down removed, as the kubelet leaves it: the Job controller
    deleted it, its launcher stopped on SIGTERM (143), and the Job's finalizer still holds it."""
    return PodState(name=f"demo-{index}-x", index=index, restart=0, phase="Failed", exit_code=143, reason="Error",
                    deleting=True, finished="2026-11-25T12:00:00Z")


def test_a_pod_a_scale_down_let_go_is_not_a_lost_worker() -> None:
    """Scaled from 3 to 2: the Job controller deletes worker 2's pod, which ends as a deleted pod
    does. Nothing replaces it, so it is no rejoin (no record, no Rejoined event) and no group
    restart; the same pod of a job scaled to 3 again is lost and rejoins, as before."""
    obj, _ = step(training_job(**elastic(workers=2)["spec"]), Observed())
    shrunk = Observed(True, JobState(0, parallelism=2), [*running(0, 2), let_go(2)], network_policy=POLICY)
    obj, actions = step(obj, shrunk)
    status = obj["status"]
    assert status["phase"] == "Running" and status["restarts"] == 0 and "recoveries" not in status
    assert actions.delete_job is None and not [e for e in actions.events if e.reason == "Rejoined"]
    assert (status["desiredWorkers"], status["currentWorkers"]) == (2, 2)
    obj["spec"]["workers"] = 3
    obj, actions = step(obj, shrunk)
    assert [r["recovered"] for r in obj["status"]["recoveries"]] == ["Rejoined"] and actions.delete_job is None


def test_only_an_index_past_an_elastic_jobs_count_was_let_go() -> None:
    scaled = TrainingJob.from_dict(elastic(workers=2)).spec
    assert scaled_away(2, scaled) and not scaled_away(1, scaled) and not scaled_away(None, scaled)
    # a fixed-size job's count changes with its next group, a queued one keeps Kueue's size: its pods are lost
    assert not scaled_away(2, TrainingJob.from_dict(spec(workers=2)).spec)
    assert not scaled_away(2, TrainingJob.from_dict(elastic(workers=2, queueName="q")).spec)


def test_a_running_elastic_job_stays_running_with_at_least_min_workers() -> None:
    """A lost worker's pod pending again: the elastic job trains on with the rest, so it stays
    Running (and its figures, status.worldSize among them, are still read); a fixed-size job, or
    fewer than minWorkers, is Pending."""
    obj, _ = step(training_job(**elastic(minWorkers=2, workers=3)["spec"]), Observed())
    obj, _ = step(obj, Observed(True, JobState(0, parallelism=3), running(0, 3), network_policy=POLICY))
    assert obj["status"]["phase"] == "Running"
    held = [*running(0, 2), PodState(name="demo-2-y", index=2, restart=0, phase="Pending")]
    kept, actions = step(obj, Observed(True, JobState(0, parallelism=3), held, network_policy=POLICY))
    assert kept["status"]["phase"] == "Running" and actions.read_metrics is not None
    assert "2/3 workers running, at least minWorkers (2)" in [c["message"] for c in kept["status"]["conditions"]]
    fewer, actions = step(kept, Observed(True, JobState(0, parallelism=3), held[1:], network_policy=POLICY))
    assert fewer["status"]["phase"] == "Pending" and actions.read_metrics is None
    fixed, _ = step(training_job(workers=3), Observed())
    fixed, _ = step(fixed, Observed(True, JobState(0, parallelism=3), running(0, 3), network_policy=POLICY))
    fixed, _ = step(fixed, Observed(True, JobState(0, parallelism=3), held, network_policy=POLICY))
    assert fixed["status"]["phase"] == "Pending"


def test_a_fixed_job_or_a_queued_one_is_not_resized() -> None:
    fixed = training_job(workers=2)
    obj, _ = step(fixed, Observed())
    _obj, actions = step(obj, Observed(True, JobState(0, parallelism=3), running(0, 3), network_policy=POLICY))
    assert actions.resize_job is None
    queued = training_job(**elastic(workers=2, queueName="q")["spec"])
    obj, _ = step(queued, Observed())
    _obj, actions = step(obj, Observed(True, JobState(0, parallelism=3), running(0, 3), network_policy=POLICY))
    assert actions.resize_job is None


# a local run (local/elastic.py) and the launcher's world line

def local_run(**changes: Any) -> ElasticRun:
    run = ElasticRun.of(TrainingJob.from_dict(elastic(maxWorkers=2, workers=2, **changes)).spec)
    assert run is not None
    return run


def test_a_fixed_run_has_no_elastic_state() -> None:
    assert ElasticRun.of(TrainingJob.from_dict(spec()).spec) is None


def test_a_lost_worker_rejoins_only_while_min_remain_and_never_worker_0() -> None:
    run = local_run()
    assert run.may_rejoin(1, 137, alive=1)
    assert not run.may_rejoin(0, 137, alive=1)  # its agent hosts the rendezvous store
    assert not run.may_rejoin(1, 137, alive=0)
    rules = {"inPlaceRestarts": 2, "failurePolicy": {"rules": [{"action": "FailJob",
                                                                 "onExitCodes": {"operator": "In", "values": [3]}}]}}
    assert not local_run(runPolicy=rules).may_rejoin(1, 3, alive=1)


def test_the_replacement_starts_once_the_others_restarted_without_it_and_rejoins_are_bounded() -> None:
    run = local_run()
    run.lost(1, in_place_told=0, now=100.0)
    assert run.due(in_place_told=0, now=101.0) == []
    assert run.due(in_place_told=1, now=102.0) == [1] and run.rejoins == 1 and run.pending == {}
    run.lost(1, in_place_told=1, now=200.0)
    assert run.due(in_place_told=1, now=200.0 + REJOIN_WAIT_SECONDS) == [1]
    assert not run.may_rejoin(1, 137, alive=1)  # inPlaceRestarts (2) rejoins in this group
    run.new_group()
    assert run.may_rejoin(1, 137, alive=1)


def test_each_rendezvous_round_is_kept_once_and_summed_up() -> None:
    run = local_run()
    for line in ['tandem.world: {"nodes": 2, "round": 1, "worldSize": 2}',
                 'x tandem.world: {"nodes": 2, "round": 1, "worldSize": 2}',
                 'tandem.world: {"nodes": 1, "round": 2, "worldSize": 1}', "tandem.world: {bad",
                 'tandem.world: {"nodes": 2, "round": 3, "worldSize": 2}']:
        world = parse_world(line)
        if world is not None:
            run.told(world)
    assert run.world_size == 2
    assert run.summary() == "elastic workers 1..2: desired 2   rejoined: 0   world size by round: 2 -> 1 -> 2"


def test_the_launcher_tells_each_rounds_world_after_the_rendezvous() -> None:
    out = io.StringIO()

    class Agent:
        def __init__(self) -> None:
            handler = SimpleNamespace(_state_holder=SimpleNamespace(state=SimpleNamespace(round=4)))
            self._worker_group = SimpleNamespace(spec=SimpleNamespace(rdzv_handler=handler))

        def _initialize_workers(self, group: Any) -> None:
            group.group_world_size = 2
            group.workers = [SimpleNamespace(world_size=4)]

    told: list[dict[str, Any]] = []
    recovery.watch_world(Agent, out, tell=told.append, restart_number=3)
    Agent()._initialize_workers(SimpleNamespace(workers=[]))
    assert parse_world(out.getvalue()) == (4, 2, 4)
    # The same record goes to the teller, for status.worldSize on a cluster (the line is in the pod's log only).
    assert told == [{"round": 4, "nodes": 2, "worldSize": 4, "restart": 3}]
