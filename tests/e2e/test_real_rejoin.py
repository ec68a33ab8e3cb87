"""A lost worker pod of an elastic job rejoins on real pods: with minWorkers 1 and workers 2,
worker 1's pod deleted mid-run is recreated by the Job controller for its index (the rendered
podFailurePolicy ignores a deleted worker); meanwhile worker 0 goes on alone, at world size 1
(its processes restarted in place, a rendezvous round of one); the new pod's agent then joins the
c10d rendezvous at worker 0's agent and the world grows back to 2. The operator restarts no group;
it records the rejoin in status, posts an event, and shows the world size the launchers tell
(status.worldSize). Then `kubectl scale tj/NAME --replicas=1` shrinks the same job in place: the
Job controller lets worker 1's pod go, worker 0 goes on alone at world size 1 and finishes. One
job carries both proofs, as each costs the tier a running job. Nothing is mocked: the same
installed chart, cluster DNS and gateway as test_real_in_place.py.
"""

from __future__ import annotations

import json
import re

import pytest

from tandem.contract import REASON_REJOINED, REASON_SCALED
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

#: Enough for the shrunk world to train a while after the rejoin and the scale (each a rendezvous
#: round of up to torch's 30 s last call), so that status is seen at world size 1 while it runs.
STEPS = 600


def worlds(log: str) -> list[tuple[int, int]]:
    """(round, world size) of each rendezvous round a launcher told in its log, once per round."""
    told: list[tuple[int, int]] = []
    for line in log.splitlines():
        world = parse_world(line)
        if world is not None and (not told or told[-1][0] != world[0]):
            told.append((world[0], world[2]))
    return told


def steps_logged(log: str, rank: int) -> list[int]:
    return [int(m) for m in re.findall(rf"^rank {rank}: step (\d+)/", log, re.M)]


def trains_at(cp, ns: str, name: str, rounds: int, size: int) -> bool:
    """Worker 0's launcher told at least `rounds` rounds, the last of world size `size`, and its rank
    logged a step after it. (The test asserts the exact rounds at the end, with the log to read.)"""
    lines = pod_logs(cp, ns, name).get(0, "").splitlines()
    sizes = [told for _, told in worlds("\n".join(lines))]
    if len(sizes) < rounds or sizes[-1] != size:
        return False
    last = max(i for i, line in enumerate(lines) if parse_world(line) is not None)
    return any(re.match(r"rank 0: step \d+/", line) for line in lines[last:])


def the_job(cp, ns: str, name: str) -> dict:
    (job,) = get_json(cp, "jobs", "-n", ns, "-l", f"tandem.dev/job-name={name}")["items"]
    return job


def test_a_deleted_worker_pod_rejoins_and_kubectl_scale_shrinks_the_job_in_place(tandem, e2e_namespace, shared_claim):
    """Worker 1's pod of an elastic job (minWorkers 1, workers 2) is deleted once rank 0 is past
    step 25 (the example's preemption helper then stops both ranks at a step, rank 0 saving a
    checkpoint, and worker 0's agent restarts its process in place). While an admission policy
    holds the new pod of index 1 off the node, worker 0 trains on alone: its launcher tells a round
    of world size 1, status.worldSize says 1, and its rank logs steps. Once the pod may start, its
    agent joins and the world grows back to 2 (status.worldSize 2). A new pod (a new UID) runs
    index 1, worker 0's pod keeps its UID, status.restarts stays 0, status.recoveries holds the
    Rejoined record of worker 1 with its seconds, and one Rejoined event is posted.

    Once the rejoined worker trains, `kubectl scale --replicas=1` (within minWorkers..maxWorkers):
    the same Job (UID) gets parallelism and completions 1, the Job controller deletes worker 1's
    pod, worker 0's launcher tells a round of world size 1 and its rank trains on, status.worldSize,
    desiredWorkers and currentWorkers say 1, and the job Succeeds with rank 0 alone at the last step.
    The pod let go is no lost worker: still one Rejoined record and event, no group restart."""
    cp, _ = tandem
    ns = e2e_namespace
    claim, directory = shared_claim
    name = "ddp-rejoin"
    job = with_volume(example("mnist-ddp.yaml", name,
                              ["--steps", str(STEPS), "--log-every", "5", "--checkpoint-every", "10",
                               "--sleep-per-step", "0.3", "--checkpoint-dir", "/shared/ckpt-rejoin",
                               "--output-dir", "/shared/out-rejoin"]), claim)
    job["spec"].update(minWorkers=1, maxWorkers=2, workers=2)
    # Worker 0's rank stops (and its agent restarts it in place) once for the deleted pod and once
    # for the pod the scale-down lets go; a worker joining is no failure to torch. One to spare.
    job["spec"]["runPolicy"]["inPlaceRestarts"] = 3
    apply(cp, ns, job)

    def both_pods():
        pods = [worker_pod(cp, ns, name, index) for index in (0, 1)]
        return {index: pod["metadata"]["uid"] for index, pod in enumerate(pods) if pod} if all(pods) else None
    uids = wait_for("both worker pods", both_pods, 120, explain=lambda: describe(cp, ns))
    job_uid = the_job(cp, ns, name)["metadata"]["uid"]

    def past_step_25():
        steps = steps_logged(pod_logs(cp, ns, name).get(0, ""), 0)
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

    # the rejoin: the world grows back to 2 and the new pod's rank trains in it
    wait_for("worker 0 training at world size 2 again", lambda: trains_at(cp, ns, name, 3, 2), 300,
             explain=lambda: describe(cp, ns))
    wait_for("status.worldSize 2 again", lambda: tj_status(cp, ns, name).get("worldSize") == 2, 60,
             explain=lambda: json.dumps(tj_status(cp, ns, name), indent=1))
    rejoined_pod = worker_pod(cp, ns, name, 1)
    assert rejoined_pod is not None and rejoined_pod["metadata"]["uid"] != uids[1]
    wait_for("the rejoined rank 1 training", lambda: steps_logged(pod_logs(cp, ns, name).get(1, ""), 1), 120,
             explain=lambda: describe(cp, ns))

    # kubectl scale within the range: the same Job shrinks, worker 0 trains on alone
    cp.kubectl("scale", "tj", name, "-n", ns, "--replicas=1")
    scaled_at = max(steps_logged(pod_logs(cp, ns, name)[0], 0))
    assert scaled_at < STEPS - 100, scaled_at  # the shrunk world has steps left to train
    wait_for("the Job shrunk to 1", lambda: the_job(cp, ns, name)["spec"]["completions"] == 1, 60,
             explain=lambda: describe(cp, ns))
    shrunk = the_job(cp, ns, name)
    assert (shrunk["spec"]["parallelism"], shrunk["metadata"]["uid"]) == (1, job_uid)  # in place, no new group
    wait_for("worker 0 training at world size 1 after the scale", lambda: trains_at(cp, ns, name, 4, 1), 180,
             explain=lambda: describe(cp, ns))
    wait_for("status.worldSize 1 after the scale", lambda: tj_status(cp, ns, name).get("worldSize") == 1, 60,
             explain=lambda: json.dumps(tj_status(cp, ns, name), indent=1))

    def one_worker():
        now = tj_status(cp, ns, name)
        return (now.get("desiredWorkers"), now.get("currentWorkers"), now.get("phase")) == (1, 1, "Running")
    wait_for("desiredWorkers and currentWorkers 1, Running", one_worker, 60,
             explain=lambda: json.dumps(tj_status(cp, ns, name), indent=1))
    wait_for("worker 1's pod gone", lambda: worker_pod(cp, ns, name, 1) is None, 120, explain=lambda: describe(cp, ns))

    status = run_to_end(cp, ns, name, timeout=600)
    explain = f"{json.dumps(status, indent=1)}\n{describe(cp, ns)}"
    assert status["phase"] == "Succeeded", explain
    assert status["restarts"] == 0, explain
    assert status["worldSize"] == 1 and status["desiredWorkers"] == 1, explain
    told = worlds(pod_logs(cp, ns, name)[0])
    # shrunk to the survivor, grown back on the rejoin, shrunk by the scale
    assert [size for _, size in told] == [2, 1, 2, 1], told
    rejoined = [r for r in status["recoveries"] if r["recovered"] == "Rejoined"]
    assert len(rejoined) == 1, explain
    (record,) = rejoined  # the pod the scale-down let go is not a lost worker
    assert (record["worker"], record["exitCode"], record["reason"], record["restart"]) == (
        1, 143, "PodDeleted", 0), explain
    assert record["pod"] == lost["metadata"]["name"] and record.get("seconds", -1) >= 0, explain
    assert not any(r["recovered"] == "GroupRestart" for r in status["recoveries"]), explain

    survivor = worker_pod(cp, ns, name, 0)
    assert survivor is not None and survivor["metadata"]["uid"] == uids[0], explain  # worker 0 kept its pod
    assert the_job(cp, ns, name)["metadata"]["uid"] == job_uid, explain
    result = json.loads((directory / "out-rejoin" / "rank0.json").read_text())
    assert (result["steps"], result["world_size"]) == (STEPS, 1), result  # rank 0 ended alone, every step done
    assert not (directory / "out-rejoin" / "rank1.json").exists()  # rank 1 was let go before the end

    def event():
        events = get_json(cp, "events", "-n", ns, "--field-selector",
                          f"reason={REASON_REJOINED},involvedObject.name={name}")["items"]
        return events or None
    (posted,) = wait_for("the Rejoined event", event, 30, explain=lambda: describe(cp, ns))
    assert posted["type"] == "Normal" and "worker 1 exit 143 (PodDeleted)" in posted["message"], posted
    scaled = get_json(cp, "events", "-n", ns, "--field-selector",
                      f"reason={REASON_SCALED},involvedObject.name={name}")["items"]
    assert "workers 2 -> 1 (range 1..2), in place" in [e["message"] for e in scaled], scaled
