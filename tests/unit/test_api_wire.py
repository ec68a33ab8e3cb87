"""The model reads a spec as the API server does with the generated CRD.

Each case is one the apiserver decided differently before; tests/cluster/test_crd_agrees_with_model.py
proves the agreement against the real apiserver, these pin the model's side in milliseconds.
"""

from __future__ import annotations

import re

import pytest

from tandem.api import SpecError, TrainingJob
from tandem.api.crd import crd
from tandem.contract import ENV_VAR_NAME_PATTERN, IMAGE_REFERENCE_PATTERN, POSITIVE_QUANTITY_PATTERN
from tests.support.specs import spec

REFUSED = {
    "env name starting with a digit": (spec(env=[{"name": "1X"}]), "spec.env[0].name"),
    "env name with a trailing newline": (spec(env=[{"name": "X\n"}]), "spec.env[0].name"),
    "cpu zero": (spec(resources={"cpu": "0"}), "spec.resources.cpu"),
    "memory integer zero": (spec(resources={"memory": 0}), "spec.resources.memory"),
    "cpu padded": (spec(resources={"cpu": " 1"}), "spec.resources.cpu"),
    "cpu as a float": (spec(resources={"cpu": 1.5}), "spec.resources.cpu"),
    "cpu upper-case K": (spec(resources={"cpu": "1K"}), "spec.resources.cpu"),
    "image with a space": (spec(image="example.org/train:1 --privileged"), "spec.image"),
    "image upper-case path": (spec(image="example.org/Train:1"), "spec.image"),
    "workers as a string": (spec(workers="2"), "spec.workers"),
    "workers as a boolean": (spec(workers=True), "spec.workers"),
    "snake_case field": (spec(procs_per_worker=2), "spec.procs_per_worker"),
    "suspend as an integer": (spec(runPolicy={"suspend": 1}), "spec.runPolicy.suspend"),
    "label value with a trailing newline": (spec(podTemplate={"labels": {"a": "b\n"}}), "spec.podTemplate.labels"),
    "node-selector value with a space": (spec(podTemplate={"nodeSelector": {"a": "a b"}}), "spec.podTemplate.nodeSelector"),
    "label key with an empty prefix": (spec(podTemplate={"labels": {"/a": "b"}}), "spec.podTemplate.labels"),
    "integer past int64": (spec(resources={"gpus": 2**63}), "spec.resources.gpus"),
    "float integer past 2**53": (spec(resources={"cpu": 3.7e16}), "spec.resources.cpu"),
    "unknown field, even null": ({**spec(), "spec": {**spec()["spec"], "unknownField": None}}, "spec.unknownField"),
    "metadata annotations past 256 KiB": (
        {**spec(), "metadata": {"name": "demo", "annotations": {f"k{i}": "v" * 65536 for i in range(4)}}},
        "metadata.annotations"),
    "tpu topology the accelerator lacks": (
        spec(framework="tensorflow", strategy="tpu", workers=None,
             tpu={"accelerator": "tpu-v5-lite-podslice", "topology": "2x2x2"}), "spec.tpu"),
}


@pytest.mark.parametrize("document, field", REFUSED.values(), ids=REFUSED.keys())
def test_refused_as_the_apiserver_refuses(document, field):
    with pytest.raises(SpecError) as error:
        TrainingJob.from_dict(document)
    assert any(path.startswith(field) for path, _ in error.value.problems), error.value.problems


def test_accepted_as_the_apiserver_accepts():
    job = TrainingJob.from_dict(spec(workers=2.0, resources={"cpu": 2, "memory": "+1.5Gi", "gpus": None},
                                     image="localhost:5000/team/train:v1.2@sha256:" + "a" * 64,
                                     env=[{"name": "my.var-1", "value": None}]))
    assert job.spec.workers == 2 and isinstance(job.spec.workers, int)
    assert job.spec.resources.cpu == "2" and job.spec.resources.gpus == 0  # null is absent: the default
    assert job.spec.env[0].value == ""


def test_the_crd_carries_the_contract_patterns():
    spec_schema = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    assert spec_schema["image"]["pattern"] == IMAGE_REFERENCE_PATTERN
    assert spec_schema["env"]["items"]["properties"]["name"]["pattern"] == ENV_VAR_NAME_PATTERN
    for name in ("cpu", "memory"):
        assert spec_schema["resources"]["properties"][name]["pattern"] == POSITIVE_QUANTITY_PATTERN
        assert spec_schema["resources"]["properties"][name]["minimum"] == 1


@pytest.mark.parametrize("quantity, positive", [
    ("1", True), ("500m", True), (".5", True), ("1.", True), ("1e3", True), ("1e-30", True), ("+1", True),
    ("4Gi", True), ("0.001", True), ("0", False), ("0.0", False), (".0", False), ("00", False), ("0e5", False),
    ("-1", False), ("1K", False), ("1ki", False), ("1e", False), (" 1", False), ("1\n", False), ("", False),
])
def test_positive_quantity_pattern(quantity, positive):
    assert bool(re.fullmatch(POSITIVE_QUANTITY_PATTERN, quantity)) is positive
