"""Hang detection on the control plane: a Running group whose workers stop reporting steps
is restarted as Hung, naming the last step seen and the worker that went silent first.

kwok pods run no code, so the workers' steps come as a real worker's would: real reporters (the
in-training reporter and its shipper), holding the job's write token from the Secret the operator
made, post through a real figures gateway to a real Ray actor, and the real operator reads them
back over HTTP (tests/cluster/test_operator_metrics.py does the same for throughput). The test
then makes the workers go silent, worker 0 first, as a deadlocked group does."""

from __future__ import annotations

import time

from tests.support.kwok import with_pods
from tests.support.specs import example
from tests.support.waiting import wait_for

from .operator_fixture import apply, get
from .test_operator_metrics import PACED_REPORTER, gateway, operator_with_gateway, start_reporter, worker_env  # noqa: F401

DEADLINE = 30  # contract.MIN_PROGRESS_DEADLINE_SECONDS
SILENT = "3600"  # a pace no test waits out: the reporter steps no more


def test_a_silent_group_is_restarted_as_hung_naming_the_worker_that_went_silent_first(
        control_plane, crd, namespace, tmp_path, gateway):  # noqa: F811 - the fixture
    operator = operator_with_gateway(control_plane, tmp_path, "lease-hang-test", namespace, gateway)
    document = with_pods(example("mnist-ddp.yaml"), run_seconds=600, backoff=1)
    document["spec"]["metrics"] = {"enabled": True}
    document["spec"]["runPolicy"]["progressDeadlineSeconds"] = DEADLINE
    name = document["metadata"]["name"]
    paces = [tmp_path / "pace-0", tmp_path / "pace-1"]
    for pace in paces:
        pace.write_text("0.05")
    reporters = []

    def status():
        return (get(control_plane, namespace, "trainingjob", name) or {}).get("status") or {}

    try:
        apply(control_plane, namespace, document)
        pod_env = worker_env(control_plane, namespace, name, gateway.key)
        reporters = [start_reporter(pod_env, namespace, name, i, str(paces[i]), code=PACED_REPORTER) for i in (0, 1)]
        wait_for("steps recorded", lambda: (status().get("progress") or {}).get("lastStepAt"), timeout=120, interval=2)
        paces[0].write_text(SILENT)  # worker 0 blocks first...
        time.sleep(20)
        silenced = time.monotonic()
        paces[1].write_text(SILENT)  # ...then worker 1: the whole group is silent
        wait_for("the group restarted as Hung", lambda: status().get("restarts", 0) >= 1, timeout=150, interval=2)
        waited = time.monotonic() - silenced
        final = status()
        restarting = next(c for c in final["conditions"] if c["type"] == "Restarting")
        print(f"\nHung called {waited:.0f}s after the last worker went silent: {restarting['message']}")
        assert restarting["reason"] == "Hung", restarting
        assert f"(progressDeadlineSeconds {DEADLINE})" in restarting["message"]
        assert "(worker 1)" in restarting["message"]  # the last step seen was worker 1's
        assert "silent first: worker 0 (step" in restarting["message"]
        assert waited >= DEADLINE - 1  # never called early (a step seen at read R: hung at R + deadline)
        assert final["lastFailure"]["reason"] == "Hung" and final["lastFailure"]["action"] == "Count"
        assert final["lastFailure"]["worker"] == 0
    finally:
        for process in reporters:
            process.kill()
        operator.stop()
