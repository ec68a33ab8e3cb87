"""Each job's NetworkPolicy on the real control plane, with the operator running.

What this proves: the operator creates the policy with the job's children, owned by the
TrainingJob, selecting exactly this job's worker pods (as the API server's own label selection
finds them) and admitting only them; it puts the policy back when it is edited or deleted, and
the garbage collector removes it with the job. What it cannot prove: enforcement. The control
plane has no CNI that implements NetworkPolicy (kwok pods have no network at all, and the e2e
node's bridge CNI ignores policies); see docs/security.md, "Network".
"""

from __future__ import annotations

import json

import pytest

from tandem.api import TrainingJob
from tandem.contract import tensorboard_name
from tandem.render import render_one
from tests.support.kwok import job_document
from tests.support.waiting import wait_for

from .operator_fixture import Operator, crd, get  # noqa: F401 - crd fixture


@pytest.fixture(scope="module")
def operator(control_plane, crd, tmp_path_factory):  # noqa: F811 - crd is the fixture imported above
    op = Operator(control_plane.kubeconfig, tmp_path_factory.mktemp("operator") / "operator.log").start()
    yield op
    op.stop()


def apply(control_plane, namespace, document):
    control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(document))


def selector_of(match_labels):
    return ",".join(f"{k}={v}" for k, v in match_labels.items())


def pod_names(control_plane, namespace, selector):
    return sorted(p["metadata"]["name"] for p in get(control_plane, namespace, "pods", selector=selector)["items"])


def test_each_job_gets_an_owned_policy_admitting_only_its_own_workers(control_plane, operator, namespace):
    apply(control_plane, namespace, job_document("alpha", workers=2, run_seconds=120))
    apply(control_plane, namespace, job_document("beta", workers=3, run_seconds=120))
    policy = wait_for("alpha's NetworkPolicy", lambda: get(control_plane, namespace, "networkpolicy", "alpha"), 60)
    owner = get(control_plane, namespace, "trainingjob", "alpha")
    (reference,) = policy["metadata"]["ownerReferences"]
    assert (reference["kind"], reference["name"], reference["uid"], reference["controller"]) == (
        "TrainingJob", "alpha", owner["metadata"]["uid"], True)
    spec = policy["spec"]
    # As rendered, field for field: the API server defaults nothing in it, so the operator's
    # comparison (observed spec != rendered spec -> apply) does not apply it on every pass.
    rendered = TrainingJob.from_dict({**job_document("alpha", workers=2, run_seconds=120),
                                      "metadata": {"name": "alpha", "namespace": namespace}})
    assert spec == render_one(rendered, "NetworkPolicy")["spec"]
    assert spec["policyTypes"] == ["Ingress"]
    (rule,) = spec["ingress"]
    (source,) = rule["from"]
    assert set(source) == {"podSelector"} and "ports" not in rule

    # The API server's own selection: the policy's pods and its admitted sources are alpha's two
    # workers, not beta's, not another namespace's.
    alpha = wait_for("alpha's 2 pods", lambda: len(pod_names(control_plane, namespace, "tandem.dev/job-name=alpha")) == 2
                     and pod_names(control_plane, namespace, "tandem.dev/job-name=alpha"), 60)
    wait_for("beta's 3 pods", lambda: len(pod_names(control_plane, namespace, "tandem.dev/job-name=beta")) == 3, 60)
    assert pod_names(control_plane, namespace, selector_of(spec["podSelector"]["matchLabels"])) == alpha
    assert pod_names(control_plane, namespace, selector_of(source["podSelector"]["matchLabels"])) == alpha
    beta = wait_for("beta's NetworkPolicy", lambda: get(control_plane, namespace, "networkpolicy", "beta"), 60)
    assert len(pod_names(control_plane, namespace, selector_of(beta["spec"]["podSelector"]["matchLabels"]))) == 3

    # Kept in sync: edited to admit everyone, it is put back; deleted, it is created again.
    control_plane.kubectl("patch", "networkpolicy", "alpha", "-n", namespace, "--type=json",
                          "-p", json.dumps([{"op": "replace", "path": "/spec/ingress", "value": [{}]}]))
    wait_for("the edit undone", lambda: get(control_plane, namespace, "networkpolicy", "alpha")["spec"] == spec, 60)
    control_plane.kubectl("delete", "networkpolicy", "alpha", "-n", namespace)
    again = wait_for("the policy back", lambda: get(control_plane, namespace, "networkpolicy", "alpha"), 60)
    assert again["spec"] == spec and again["metadata"]["uid"] != policy["metadata"]["uid"]

    # Removed with the job (ownerReferences, the garbage collector).
    control_plane.kubectl("delete", "tj", "alpha", "-n", namespace, "--wait=false")
    wait_for("alpha's policy gone", lambda: get(control_plane, namespace, "networkpolicy", "alpha") is None, 60)
    assert get(control_plane, namespace, "networkpolicy", "beta") is not None


def test_tensorboard_policy_opens_its_port_to_the_namespace(control_plane, operator, namespace):
    document = job_document("board", run_seconds=60)
    document["spec"]["tensorboard"] = {"enabled": True, "claimName": "training-logs"}
    apply(control_plane, namespace, document)
    policy = wait_for("the TensorBoard's policy",
                      lambda: get(control_plane, namespace, "networkpolicy", tensorboard_name("board")), 60)
    assert policy["metadata"]["ownerReferences"][0]["name"] == "board"
    (rule,) = policy["spec"]["ingress"]
    assert rule == {"from": [{"podSelector": {}}], "ports": [{"protocol": "TCP", "port": 6006}]}
    deployment = get(control_plane, namespace, "deployment", tensorboard_name("board"))
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
