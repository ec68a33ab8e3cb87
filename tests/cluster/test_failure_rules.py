"""Failure rules on the control plane with the real operator, apiserver and
Job controller (kwok pods that exit with a chosen code), and the CRD's CEL rules at apply."""

from __future__ import annotations

import json

from tests.support.kwok import with_pods
from tests.support.specs import example
from tests.support.waiting import wait_for

from .operator_fixture import apply, crd, get  # noqa: F401 - crd fixture

USER_ERROR = {"rules": [{"name": "user-error", "action": "FailJob", "onExitCodes": {"operator": "In", "values": [2]}}]}


def status(control_plane, namespace, name):
    return (get(control_plane, namespace, "trainingjob", name) or {}).get("status") or {}


def test_fail_job_rule_fails_without_a_restart_naming_rule_and_worker(control_plane, operator, ns):
    document = with_pods(example("mnist-ddp.yaml"), run_seconds=1, exit_code=2, backoff=3)
    document["spec"]["runPolicy"]["failurePolicy"] = USER_ERROR
    name = document["metadata"]["name"]
    apply(control_plane, ns, document)
    wait_for("Failed", lambda: status(control_plane, ns, name).get("phase") == "Failed", timeout=90)
    final = status(control_plane, ns, name)
    failed = next(c for c in final["conditions"] if c["type"] == "Failed")
    assert final["restarts"] == 0 and failed["reason"] == "FailedByRule", final
    assert "exit code 2" in failed["message"] and "failure rule 0 (user-error) says FailJob" in failed["message"]
    last = final["lastFailure"]
    assert (last["exitCode"], last["rule"], last["ruleName"], last["action"]) == (2, 0, "user-error", "FailJob")
    assert last["worker"] in (0, 1) and last["pod"].startswith(f"{name}-{last['worker']}-")


def test_an_unmatched_exit_code_still_counts(control_plane, operator, ns):
    document = with_pods(example("mnist-ddp.yaml"), run_seconds=1, exit_code=3, backoff=1)
    document["spec"]["runPolicy"]["failurePolicy"] = USER_ERROR
    name = document["metadata"]["name"]
    apply(control_plane, ns, document)
    wait_for("Failed", lambda: status(control_plane, ns, name).get("phase") == "Failed", timeout=120)
    final = status(control_plane, ns, name)
    # no rule matched: the merge patch dropped the null rule
    assert final["restarts"] == 1 and final["lastFailure"]["action"] == "Count" and "rule" not in final["lastFailure"]
    assert next(c for c in final["conditions"] if c["type"] == "Failed")["reason"] == "BackoffLimitExceeded"


def test_the_crd_refuses_bad_rules_with_a_clear_message(control_plane, operator, ns):
    for rules, words in [
        ({"rules": [{"action": "FailJob"}]}, "set exactly one of onExitCodes, onPodConditions and onReasons"),
        ({"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [0]}}]},
         "onExitCodes.values must not contain 0 with operator In"),
        ({"rules": [{"name": "a", "action": "Count", "onReasons": ["Hung"]},
                    {"name": "a", "action": "Ignore", "onReasons": ["Error"]}]}, "each failure rule name must be used once"),
    ]:
        document = example("mnist-ddp.yaml")
        document["spec"].setdefault("runPolicy", {})["failurePolicy"] = rules
        result = control_plane.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(document), check=False)
        assert result.returncode != 0 and words in result.stderr, result.stderr
    document = example("mnist-ddp.yaml")
    document["spec"]["metrics"] = {"enabled": False}
    document["spec"].setdefault("runPolicy", {})["progressDeadlineSeconds"] = 60
    result = control_plane.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(document), check=False)
    assert result.returncode != 0 and "metrics.enabled must be true" in result.stderr, result.stderr


def test_the_fields_show_in_kubectl_explain(control_plane, crd):  # noqa: F811 - the fixture
    """The descriptions come from the model (api/model.py, api/status.py) through the CRD."""
    for path, words in [
        ("trainingjobs.spec.runPolicy.failurePolicy.rules", "the first that matches decides"),
        ("trainingjobs.spec.runPolicy.failurePolicy.rules.onExitCodes.operator", "NotIn"),
        ("trainingjobs.spec.runPolicy.failurePolicy.rules.onPodConditions.type", "DisruptionTarget"),
        ("trainingjobs.spec.runPolicy.progressDeadlineSeconds", "restart the group as Hung"),
        ("trainingjobs.spec.runPolicy.startupDeadlineSeconds", "no step is reported"),
        ("trainingjobs.status.lastFailure.ruleName", "Name of the rule that matched"),
    ]:
        def explained(path=path, words=words):
            result = control_plane.kubectl("explain", path, check=False)
            return result.returncode == 0 and words in " ".join(result.stdout.split())
        wait_for(f"kubectl explain {path}", explained, timeout=30, interval=1)
