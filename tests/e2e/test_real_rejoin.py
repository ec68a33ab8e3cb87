"""A lost worker pod of an elastic job rejoins on real pods: with minWorkers 1 and workers 2,
worker 1's pod deleted mid-run is recreated by the Job controller for its index (the rendered
podFailurePolicy ignores a deleted worker); meanwhile worker 0 goes on alone, at world size 1
(its processes restarted in place, a rendezvous round of one); the new pod's agent then joins the
c10d rendezvous at worker 0's agent and the world grows back to 2. The operator restarts no group;
it records the rejoin in status, posts an event, and shows the world size the launchers tell
(status.worldSize). Nothing is mocked: the same installed chart, cluster DNS and gateway as
test_real_in_place.py.
"""

from __future__ import annotations

import json
import re

import pytest

from tandem.contract import REASON_REJOINED
from tandem.local.elastic import parse_world
from tests.e2e.chart import (
    apply,
    describe,
    example,
    get_json,
    held_off_the_node,
    pod_logs,
    run_to_end,
    tj_status,
    wait_for,
    with_volume,
    worker_pod,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

STEPS = 400


def worlds(log: str) -> list[tuple[int, int]]:
    """(round, world size) of each rendezvous round a launcher told in its log, once per round."""
    told: list[tuple[int, int]] = []
    for line in log.splitlines():
        world = parse_world(line)
        if world is not None and (not told or told[-1][0] != world[0]):
            told.append((world[0], world[2]))
    return told


def test_a_deleted_worker_pod_rejoins_without_a_group_restart(tandem, e2e_namespace, shared_claim):
    """Worker 1's pod of an elastic job (minWorkers 1, workers 2) is deleted once rank 0 is past
    step 25 (the example's preemption helper then stops both ranks at a step, rank 0 saving a
    checkpoint, and worker 0's agent restarts its process in place). While an admission policy
    holds the new pod of index 1 off the node, worker 0 trains on alone: its launcher tells a round
    of world size 1, status.worldSize says 1, and its rank logs steps. Once the pod may start, its
    agent joins and the world grows back to 2 (status.worldSize 2). A new pod (a new UID) runs
    index 1, worker 0's pod keeps its UID, status.restarts stays 0, status.recoveries holds the
    Rejoined record of worker 1 with its seconds, one Rejoined event is posted, and both ranks end
    with the same weights."""
    cp, _ = tandem
    ns = e2e_namespace
    claim, directory = shared_claim
    name = "ddp-rejoin"
    job = with_volume(example("mnist-ddp.yaml", name,
                              ["--steps", str(STEPS), "--log-every", "5", "--checkpoint-every", "10",
                               "--sleep-per-step", "0.3", "--checkpoint-dir", "/shared/ckpt-rejoin",
                               "--output-dir", "/shared/out-rejoin"]), claim)
    job["spec"].update(minWorkers=1, maxWorkers=2, workers=2)
    job["spec"]["runPolicy"]["inPlaceRestarts"] = 2
    apply(cp, ns, job)

    def both_pods():
        pods = [worker_pod(cp, ns, name, index) for index in (0, 1)]
        return {index: pod["metadata"]["uid"] for index, pod in enumerate(pods) if pod} if all(pods) else None
    uids = wait_for("both worker pods", both_pods, 120, explain=lambda: describe(cp, ns))

    def past_step_25():
        steps = [int(m) for m in re.findall(r"^rank \d+: step (\d+)/", pod_logs(cp, ns, name).get(0, ""), re.M)]
        return steps and max(steps) >= 25
    wait_for("training past step 25", past_step_25, 300, explain=lambda: describe(cp, ns))
    wait_for("status.worldSize 2", lambda: tj_status(cp, ns, name).get("worldSize") == 2, 60,
             explain=lambda: json.dumps(tj_status(cp, ns, name), indent=1))
    lost = worker_pod(cp, ns, name, 1)
    assert lost is not None
    with held_off_the_node(cp, ns, f"{name}-1-"):
        cp.kubectl("delete", "pod", lost["metadata"]["name"], "-n", ns, "--wait=false")

        def replaced():
            pod = worker_pod(cp, ns, name, 1)
            return pod if pod and pod["metadata"]["uid"] != uids[1] else None
        wait_for("a new pod for index 1", replaced, 180, explain=lambda: describe(cp, ns))

        def trains_alone():
            lines = pod_logs(cp, ns, name).get(0, "").splitlines()
            told = [i for i, line in enumerate(lines) if (parse_world(line) or (0, 0, 0))[2] == 1]
            return told and any(re.match(r"rank 0: step \d+/", line) for line in lines[told[-1]:])
        wait_for("worker 0 training at world size 1", trains_alone, 180, explain=lambda: describe(cp, ns))
        wait_for("status.worldSize 1", lambda: tj_status(cp, ns, name).get("worldSize") == 1, 60,
                 explain=lambda: json.dumps(tj_status(cp, ns, name), indent=1))
        assert not worker_pod(cp, ns, name, 1)["spec"].get("nodeName"), describe(cp, ns)  # still held

    status = run_to_end(cp, ns, name, timeout=600)
    explain = f"{json.dumps(status, indent=1)}\n{describe(cp, ns)}"
    assert status["phase"] == "Succeeded", explain
    assert status["restarts"] == 0, explain
    assert status["worldSize"] == 2, explain
    told = worlds(pod_logs(cp, ns, name)[0])
    assert [size for _, size in told] == [2, 1, 2], told  # shrunk to the survivor, grown back on the rejoin
    rejoined = [r for r in status["recoveries"] if r["recovered"] == "Rejoined"]
    assert len(rejoined) == 1, explain
    (record,) = rejoined
    assert (record["worker"], record["exitCode"], record["reason"], record["restart"]) == (
        1, 143, "PodDeleted", 0), explain
    assert record["pod"] == lost["metadata"]["name"] and record.get("seconds", -1) >= 0, explain
    assert not any(r["recovered"] == "GroupRestart" for r in status["recoveries"]), explain

    survivor = worker_pod(cp, ns, name, 0)
    assert survivor is not None and survivor["metadata"]["uid"] == uids[0], explain  # worker 0 kept its pod
    assert worker_pod(cp, ns, name, 1)["metadata"]["uid"] != uids[1], explain
    results = {k: json.loads((directory / "out-rejoin" / f"rank{k}.json").read_text()) for k in (0, 1)}
    assert results[0]["steps"] == results[1]["steps"] == STEPS
    assert results[0]["world_size"] == results[1]["world_size"] == 2
    assert results[0]["checksum"] == results[1]["checksum"]

    def event():
        events = get_json(cp, "events", "-n", ns, "--field-selector",
                          f"reason={REASON_REJOINED},involvedObject.name={name}")["items"]
        return events or None
    (posted,) = wait_for("the Rejoined event", event, 30, explain=lambda: describe(cp, ns))
    assert posted["type"] == "Normal" and "worker 1 exit 143 (PodDeleted)" in posted["message"], posted
