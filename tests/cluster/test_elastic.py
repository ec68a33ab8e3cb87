"""Elastic workers on a real control plane with the operator (kwok pods): `kubectl scale` on a
TrainingJob resizes its Indexed Job in place, within minWorkers..maxWorkers, and status says
desired and current; the world size the launchers tell the figures gateway becomes
status.worldSize."""

from __future__ import annotations

import pytest

from tandem.contract import WORLD_PATH
from tandem.launch import recovery
from tandem.launch.teller import Teller
from tests.support.columns import printed
from tests.support.figures import figures_gateway
from tests.support.kwok import with_pods
from tests.support.specs import example
from tests.support.waiting import wait_for

from .operator_fixture import Operator, apply, crd, get  # noqa: F401 - crd fixture
from .test_operator_metrics import worker_env


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    """A real figures gateway (Ray and its gateway) for this module's operator."""
    with figures_gateway(tmp_path_factory.mktemp("ray")) as metrics:
        yield metrics


@pytest.fixture(scope="module")
def operator(control_plane, crd, tmp_path_factory, gateway):  # noqa: F811 - crd fixture
    """This module's cluster-wide operator, reading figures from the gateway: a second operator
    beside one without it would race it for the jobs (each module gets its own)."""
    op = Operator(control_plane.kubeconfig, tmp_path_factory.mktemp("operator") / "operator.log", "kube-system",
                  "--metrics-address", gateway.address, "--metrics-key-file", str(gateway.key_file)).start()
    yield op
    op.stop()


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


def test_the_world_size_the_launchers_tell_is_status_world_size(control_plane, operator, ns, gateway):
    """kwok pods run no launcher, so the rounds' worlds come as a pod's launcher sends them: its
    real world teller, holding the job's write token from the Secret the operator made, posts
    through a real figures gateway to a real Ray actor, and the real operator reads them back.
    Worker 1 lost (round 2: world 1), then rejoined (round 3: world 2); a late retry of round 2
    changes nothing."""
    document = with_pods(example("mnist-ddp.yaml"), run_seconds=300)
    document["spec"].update(minWorkers=1, maxWorkers=2, workers=2, metrics={"enabled": True})
    document["spec"].setdefault("runPolicy", {})["inPlaceRestarts"] = 1
    name = document["metadata"]["name"]

    apply(control_plane, ns, document)
    env = {**worker_env(control_plane, ns, name, gateway.key), "TANDEM_JOB": name, "TANDEM_NAMESPACE": ns}
    teller = Teller.from_env(env, WORLD_PATH)
    assert teller is not None
    for told, shown in (([(1, 2, 2)], 2), ([(2, 1, 1)], 1), ([(3, 2, 2), (2, 1, 1)], 2)):
        for round_, nodes, size in told:
            teller.tell(recovery.world_record(round_, nodes, size, 0))
        # A hang bound, not a speed claim: the first record creates the job's Ray actor (a new
        # worker process); the gateway gives each Ray call 10 s and the teller retries a 503 after
        # a backoff, so on a loaded 2-core machine the first flush can take a few tries.
        assert teller.flush(120.0)
        wait_for(f"status.worldSize {shown}", lambda shown=shown: status(control_plane, ns, name).get("worldSize") == shown,
                 timeout=90, interval=2)
    assert printed(control_plane, ns, name, "-o", "wide")["WORLD"] == "2"
    assert status(control_plane, ns, name).get("restarts", 0) == 0
