"""The figures path never harms a job, on real pods: the chart's Ray head pod (the Ray head and
the figures gateway beside it) is deleted while a job with a 30-second progress deadline and a
Hung -> FailJob rule trains. The Deployment brings a new pod up (a new Ray, empty collectors); the
workers' shippers hold their records meanwhile and resume. The job must never be called Hung,
must not restart, its steps in status must keep rising after the outage, and it must succeed.
"""

from __future__ import annotations

import pytest

from tests.e2e.chart import SYSTEM, apply, describe, example, get_json, run_to_end, tj_status, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]  # the first e2e test to use `tandem` pays for its install

DEADLINE = 30  # contract.MIN_PROGRESS_DEADLINE_SECONDS: the shortest a user may set
STEPS = 450  # at least 90 s of training


def _ray_head_pods(cp) -> list[dict]:
    return get_json(cp, "pods", "-n", SYSTEM, "-l", "app.kubernetes.io/component=ray-head")["items"]


def _steps_done(cp, ns: str, name: str) -> int:
    return int(((tj_status(cp, ns, name).get("progress") or {}).get("stepsDone")) or 0)


def test_the_ray_head_pod_deleted_mid_run_is_no_hang(tandem, e2e_namespace):
    cp, _ = tandem
    ns = e2e_namespace
    name = "figures-outage"
    # STEPS of at least 0.2 s: long enough to train through the new Ray head's start (about half
    # a minute here) and past it; the phase assert below catches a run too short for that.
    job = example("mnist-ddp.yaml", name, ["--steps", str(STEPS), "--log-every", "100", "--sleep-per-step", "0.2",
                                           "--checkpoint-every", "0"])
    job["spec"]["metrics"] = {"enabled": True}
    job["spec"]["runPolicy"] = {"backoffLimit": 2, "progressDeadlineSeconds": DEADLINE, "failurePolicy": {
        "rules": [{"name": "hung", "action": "FailJob", "onReasons": ["Hung"]}]}}
    apply(cp, ns, job)
    wait_for("steps in status", lambda: _steps_done(cp, ns, name) > 0, 300, explain=lambda: describe(cp, ns))
    old = {p["metadata"]["uid"] for p in _ray_head_pods(cp)}
    assert len(old) == 1
    cp.kubectl("delete", "pod", "-n", SYSTEM, "-l", "app.kubernetes.io/component=ray-head", "--wait=false")

    def new_head_ready() -> bool:
        pods = [p for p in _ray_head_pods(cp) if p["metadata"]["uid"] not in old]
        return any(all(c.get("ready") for c in p["status"].get("containerStatuses") or [{}]) for p in pods)

    wait_for("a new Ray head pod ready", new_head_ready, 240, explain=lambda: describe(cp, SYSTEM))
    before = _steps_done(cp, ns, name)
    assert tj_status(cp, ns, name).get("phase") == "Running", describe(cp, ns)
    # The figures resume: steps read from the new head's collectors pass what status had before.
    wait_for("steps rising again after the outage", lambda: _steps_done(cp, ns, name) > before, 180,
             explain=lambda: describe(cp, ns))
    status = run_to_end(cp, ns, name, timeout=400)
    assert status.get("restarts", 0) == 0, describe(cp, ns)
    said = " ".join(f"{c.get('reason')} {c.get('message')}" for c in status.get("conditions") or [])
    assert "Hung" not in said, said
    events = cp.kubectl("get", "events", "-n", ns, "-o", "json").stdout
    assert "Hung" not in events, events[-3000:]
    assert status["progress"]["stepsDone"] == STEPS, status["progress"]
