"""Elastic workers on a real control plane with the operator (kwok pods): `kubectl scale` on a
TrainingJob resizes its Indexed Job in place, within minWorkers..maxWorkers, and status says
desired and current."""

from __future__ import annotations

from tests.support.kwok import with_pods
from tests.support.specs import example
from tests.support.waiting import wait_for

from .operator_fixture import apply, crd, get  # noqa: F401 - crd fixture


def status(control_plane, ns, name):
    return (get(control_plane, ns, "trainingjob", name) or {}).get("status") or {}


def the_job(control_plane, ns, name):
    (job,) = get(control_plane, ns, "jobs", selector=f"tandem.dev/job-name={name}")["items"]
    return job


def test_kubectl_scale_resizes_the_job_in_place_within_the_range(control_plane, operator, ns):
    document = with_pods(example("mnist-ddp.yaml"), run_seconds=120)
    document["spec"].update(minWorkers=1, maxWorkers=3, workers=2)
    document["spec"].setdefault("runPolicy", {})["inPlaceRestarts"] = 1
    name = document["metadata"]["name"]
    apply(control_plane, ns, document)
    wait_for("2 workers running", lambda: status(control_plane, ns, name).get("currentWorkers") == 2, timeout=90)
    job = the_job(control_plane, ns, name)
    assert (job["spec"]["parallelism"], job["spec"]["completions"]) == (2, 2)
    assert status(control_plane, ns, name)["desiredWorkers"] == 2

    control_plane.kubectl("scale", "tj", name, "-n", ns, "--replicas=3")
    wait_for("the Job resized", lambda: the_job(control_plane, ns, name)["spec"]["parallelism"] == 3, timeout=60)
    resized = the_job(control_plane, ns, name)
    assert resized["spec"]["completions"] == 3
    assert resized["metadata"]["uid"] == job["metadata"]["uid"]  # the same Job: no group restart
    wait_for("3 workers running", lambda: status(control_plane, ns, name).get("currentWorkers") == 3, timeout=90)
    now = status(control_plane, ns, name)
    assert now["desiredWorkers"] == 3 and now.get("restarts", 0) == 0 and now["phase"] == "Running"
    scale = control_plane.kubectl("get", "tj", name, "-n", ns, "--subresource=scale", "-o",
                                  "jsonpath={.spec.replicas} {.status.replicas}").stdout
    assert scale.split() == ["3", "3"]

    outside = control_plane.kubectl("scale", "tj", name, "-n", ns, "--replicas=4", check=False)
    assert outside.returncode != 0 and "minWorkers..maxWorkers" in outside.stderr, outside.stderr
    control_plane.kubectl("scale", "tj", name, "-n", ns, "--replicas=1")
    wait_for("the Job shrunk", lambda: the_job(control_plane, ns, name)["spec"]["completions"] == 1, timeout=60)
    assert the_job(control_plane, ns, name)["metadata"]["uid"] == job["metadata"]["uid"]
    wait_for("1 worker running", lambda: status(control_plane, ns, name).get("currentWorkers") == 1, timeout=90)
    assert status(control_plane, ns, name).get("restarts", 0) == 0
