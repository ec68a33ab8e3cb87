"""The TrainingJob model: defaults, TPU shapes, and one clear error per broken field."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from tandem.api import SpecError, TrainingJob, apply_overrides, load_job, slice_shape
from tandem.api.tpu import ACCELERATORS
from tests.conftest import EXAMPLES
from tests.support.specs import BASE, spec, valid_documents


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_are_valid(path):
    job = load_job(path)
    assert job.spec.worker_count >= 1


def test_defaults_are_filled_in():
    job = TrainingJob.from_dict(spec(workers=None))
    assert job.spec.worker_count == 1
    assert job.spec.run_policy.backoff_limit == 3
    assert job.spec.resources.cpu == "1" and job.spec.resources.gpus == 0
    assert job.to_dict()["spec"]["runPolicy"]["backoffLimit"] == 3


BROKEN = {
    "framework/strategy pair": (spec(strategy="multi-worker-mirrored"), "spec.strategy"),
    "workers 0": (spec(workers=0), "spec.workers"),
    "workers past the tested cap": (spec(workers=10001), "spec.workers"),
    "a 65 KiB argument": (spec(command=["python", "x" * 65537]), "spec.command[1]"),
    "bad name": ({**BASE, "metadata": {"name": "Bad_Name"}}, "metadata.name"),
    "name too long": ({**BASE, "metadata": {"name": "a" * 53}}, "metadata.name"),
    "unknown TPU topology": (
        spec(framework="tensorflow", strategy="tpu", workers=None,
             tpu={"accelerator": "tpu-v5-lite-podslice", "topology": "2x2x2"}),
        "spec.tpu",
    ),
    "unknown accelerator": (
        spec(framework="tensorflow", strategy="tpu", workers=None, tpu={"accelerator": "tpu-v9", "topology": "2x2"}),
        "spec.tpu",
    ),
    "negative GPUs": (spec(resources={"gpus": -1}), "spec.resources.gpus"),
    "tpu without strategy tpu": (
        spec(framework="tensorflow", strategy="multi-worker-mirrored", tpu={"accelerator": "tpu-v6e-slice", "topology": "2x2"}),
        "spec.tpu",
    ),
    "strategy tpu without tpu": (spec(framework="tensorflow", strategy="tpu", workers=None), "spec.tpu"),
    "workers disagree with slice": (
        spec(framework="tensorflow", strategy="tpu", workers=3, tpu={"accelerator": "tpu-v4-podslice", "topology": "2x2x2"}),
        "spec.workers",
    ),
    "bad quantity": (spec(resources={"memory": "lots"}), "spec.resources.memory"),
    "zero cpu": (spec(resources={"cpu": "0"}), "spec.resources.cpu"),
    "unknown field": (spec(wrokers=2), "spec.wrokers"),
    "reserved env": (spec(env=[{"name": "TANDEM_JOB", "value": "x"}]), "spec.env[0].name"),
    "duplicate env": (spec(env=[{"name": "A"}, {"name": "A"}]), "spec.env"),
    "empty command": (spec(command=[]), "spec.command"),
    "tensorflow procs": (spec(framework="tensorflow", strategy="multi-worker-mirrored", procsPerWorker=2), "spec.procsPerWorker"),
    "gpus on tpu": (
        spec(framework="tensorflow", strategy="tpu", workers=None, resources={"gpus": 1},
             tpu={"accelerator": "tpu-v6e-slice", "topology": "2x2"}),
        "spec.resources",
    ),
    "bad label": (spec(podTemplate={"labels": {"a": "not ok!"}}), "spec.podTemplate.labels"),
    "missing framework": (spec(framework=None), "spec.framework"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_spec_names_the_field(case):
    document, path = BROKEN[case]
    with pytest.raises(SpecError) as caught:
        TrainingJob.from_dict(document)
    assert len(caught.value.problems) == 1, str(caught.value)
    assert caught.value.first_path == path, str(caught.value)
    assert str(caught.value).startswith(f"{path}: ")


@pytest.mark.parametrize("name", ["TANDEM_ANYTHING", "TPU_WORKER_ID", "TF_CONFIG", "MASTER_ADDR", "LOCAL_RANK"])
def test_reserved_env_names_are_refused(name):
    with pytest.raises(SpecError, match="set by Tandem's launcher"):
        TrainingJob.from_dict(spec(env=[{"name": name, "value": "x"}]))


def test_names_that_merely_start_like_a_reserved_one_are_allowed():
    """TF_CONFIG is one variable, not a prefix (the CRD's CEL rule says the same)."""
    job = TrainingJob.from_dict(spec(env=[{"name": "TF_CONFIG_PATH", "value": "x"}, {"name": "RANKING", "value": "y"}]))
    assert [e.name for e in job.spec.env] == ["TF_CONFIG_PATH", "RANKING"]


@pytest.mark.parametrize(
    "accelerator,topology,hosts,per_host",
    [
        ("tpu-v5-lite-podslice", "2x4", 2, 4),
        ("tpu-v5-lite-podslice", "2x2", 1, 4),
        ("tpu-v5-lite-podslice", "16x16", 64, 4),
        ("tpu-v6e-slice", "1x1", 1, 1),
        ("tpu-v4-podslice", "2x2x1", 1, 4),
        ("tpu-v4-podslice", "2x2x4", 4, 4),
        ("tpu-v5p-slice", "4x4x4", 16, 4),
    ],
)
def test_tpu_slice_shapes(accelerator, topology, hosts, per_host):
    shape = slice_shape(accelerator, topology)
    assert (shape.hosts, shape.chips_per_host) == (hosts, per_host)
    assert shape.hosts * shape.chips_per_host == shape.chips


def test_single_host_v5e_2x4_on_request():
    assert slice_shape("tpu-v5-lite-podslice", "2x4", 8).hosts == 1
    with pytest.raises(ValueError, match="4 or 8 chips per host"):
        slice_shape("tpu-v5-lite-podslice", "2x4", 2)


def test_every_listed_topology_resolves():
    for accelerator, (_, topologies) in ACCELERATORS.items():
        for topology in topologies:
            shape = slice_shape(accelerator, topology)
            assert shape.hosts >= 1 and shape.chips % shape.hosts == 0


def test_tpu_workers_derived_from_topology():
    job = load_job(next(p for p in EXAMPLES if "tpu" in p.name))
    assert job.spec.worker_count == 2


def test_overrides():
    document = apply_overrides(spec(), ["workers=4", "spec.env=[{name: A, value: b}]", "metadata.name=other"])
    job = TrainingJob.from_dict(document)
    assert (job.spec.worker_count, job.spec.env[0].value, job.metadata.name) == (4, "b", "other")
    with pytest.raises(SpecError, match="key=value"):
        apply_overrides(spec(), ["workers"])


@settings(max_examples=200, deadline=None)
@given(valid_documents())
def test_generated_valid_specs_round_trip(document):
    job = TrainingJob.from_dict(document)
    again = TrainingJob.from_dict(job.to_dict())
    assert again == job
