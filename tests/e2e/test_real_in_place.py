"""In-place restarts on real pods: runPolicy.inPlaceRestarts makes torchrun's agents rendezvous
through c10d at worker 0's agent, restart a failed training process inside its pod, and tell the
operator through the figures gateway (launch/teller.py), which counts it in status and posts an
event. Nothing is mocked: the same installed chart, cluster DNS and gateway as test_real_jobs.py.

One job, few steps: every second here is CI time.
"""

from __future__ import annotations

import json

import pytest

from tandem.contract import REASON_RECOVERED_IN_PLACE
from tests.e2e.chart import apply, describe, example, get_json, pod_logs, run_to_end, wait_for, with_volume, worker_pod

# The first test of the tier that needs the chart builds its images inside its own timeout.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]


def test_a_killed_training_process_recovers_in_place(tandem, e2e_namespace, shared_claim):
    """Rank 1's training process exits 3 at step 25 (the example's own fault injection, once:
    its marker is on the shared claim), inside its running container. Its agent and worker 0's
    restart the processes in place at the next rendezvous round: the same pods, no container
    restarted, no group restart; rank 0 resumes from its step-20 checkpoint and both ranks end
    with the same weights. Status counts one in-place restart, its record names worker 1, rank 1,
    exit 3, and the operator posted one RecoveredInPlace event."""
    cp, _ = tandem
    ns = e2e_namespace
    claim, directory = shared_claim
    name = "ddp-in-place"
    job = with_volume(example("mnist-ddp.yaml", name,
                              ["--steps", "40", "--log-every", "5", "--checkpoint-every", "10",
                               "--checkpoint-dir", "/shared/ckpt", "--output-dir", "/shared/out",
                               "--crash-at-step", "25", "--crash-rank", "1", "--crash-exit-code", "3"]), claim)
    job["spec"]["runPolicy"]["inPlaceRestarts"] = 1
    apply(cp, ns, job)

    def both_pods():
        pods = [worker_pod(cp, ns, name, index) for index in (0, 1)]
        return {index: pod["metadata"]["uid"] for index, pod in enumerate(pods) if pod} if all(pods) else None
    uids = wait_for("both worker pods", both_pods, 120, explain=lambda: describe(cp, ns))

    status = run_to_end(cp, ns, name, timeout=300)
    explain = f"{json.dumps(status, indent=1)}\n{describe(cp, ns)}"
    assert status["restarts"] == 0, explain
    assert status.get("inPlaceRestarts") == 1, explain
    (record,) = status["recoveries"]
    assert (record["recovered"], record["worker"], record["rank"], record["exitCode"], record["reason"]) == (
        "InPlace", 1, 1, 3, "Error"), explain
    assert record["restart"] == 0 and record["seconds"] >= 0, explain

    for index in (0, 1):
        pod = worker_pod(cp, ns, name, index)
        assert pod is not None and pod["metadata"]["uid"] == uids[index], explain  # the same pods
        assert [c["restartCount"] for c in pod["status"]["containerStatuses"]] == [0], explain  # and containers
    logs = pod_logs(cp, ns, name)
    assert "rank 1: injected crash at step 25, exit code 3" in logs[1], logs[1][-3000:]
    resumed = [int(line.split()[-1]) for line in logs[0].splitlines() if line.startswith("rank 0: resumed from step ")]
    assert resumed and resumed[0] >= 20, logs[0][-3000:]
    results = {k: json.loads((directory / "out" / f"rank{k}.json").read_text()) for k in (0, 1)}
    assert results[0]["steps"] == results[1]["steps"] == 40
    assert results[0]["checksum"] == results[1]["checksum"]

    def event():
        events = get_json(cp, "events", "-n", ns, "--field-selector",
                          f"reason={REASON_RECOVERED_IN_PLACE},involvedObject.name={name}")["items"]
        return events or None
    (posted,) = wait_for("the RecoveredInPlace event", event, 30, explain=lambda: describe(cp, ns))
    assert posted["type"] == "Normal" and "worker 1 rank 1 exit 3 (Error)" in posted["message"], posted
