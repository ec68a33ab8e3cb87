"""Frameworks behind one interface: the registry refuses an incomplete one, and a new one needs
nothing outside its own module (a toy framework is registered, rendered, validated and run)."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Iterator

import pytest
import yaml

from tandem import frameworks
from tandem.api import SpecError, TrainingJob
from tandem.api.crd import crd
from tandem.api.model import TrainingJobSpec
from tandem.contract import API_VERSION, KIND
from tandem.figures.record import Step
from tandem.frameworks import Fixed, Framework, IncompleteFramework, Requires, Strategy, WorkerLaunch
from tandem.frameworks.__main__ import main as frameworks_main
from tandem.frameworks.pytorch import PYTORCH
from tandem.frameworks.rules import required_fields
from tandem.launch.env import build_launch
from tandem.metrics.tensorboard import EventLog
from tandem.render import render
from tests.conftest import REPO
from tests.support.commands import run_args, run_tandem
from tests.support.toy_framework import TOY

from .test_launch_env import PY, contract_env


def test_the_built_in_frameworks_in_the_docs_order() -> None:
    assert frameworks.names() == ("pytorch", "tensorflow")
    assert frameworks.get("pytorch").strategy_names == ("ddp",)
    assert frameworks.get("tensorflow").strategy_names == ("multi-worker-mirrored", "tpu")
    assert frameworks.get("tensorflow").default_strategy.name == "multi-worker-mirrored"
    with pytest.raises(KeyError, match="'jax' is not a framework Tandem launches; use pytorch or tensorflow"):
        frameworks.get("jax")


def _launch(contract: object, command: tuple[str, ...], python: str) -> WorkerLaunch:
    return WorkerLaunch(argv=command)


GOOD = Framework(name="jax", strategies=(Strategy(name="pjit", launch=_launch),), image="jax-worker", extra="jax",
                 tensorboard_writer="jax_writer:Writer")
INCOMPLETE = {
    "no strategy": ({"strategies": ()}, "strategies is empty"),
    "no image": ({"image": ""}, "image '' is not the name of an images/<image>.Dockerfile"),
    "no extra": ({"extra": ""}, "extra is missing"),
    "writer by path": ({"tensorboard_writer": "jax_writer.Writer"}, "tensorboard_writer 'jax_writer.Writer' is not"),
    "name with capitals": ({"name": "JAX"}, "name 'JAX' is not a name of lower-case letters"),
    "a strategy twice": ({"strategies": (GOOD.strategies[0], GOOD.strategies[0])}, "strategy 'pjit' is listed twice"),
    "no launch": ({"strategies": (Strategy(name="pjit", launch=None),)},
                  "strategy 'pjit': launch is not a function"),
    "a bad env entry": ({"strategies": (Strategy(name="pjit", launch=_launch, sets_env=("JAX-*",)),)},
                        "sets_env entry 'JAX-*' is not a variable name"),
    "Requires on the framework": ({"rules": (Requires("tpu", example="x"),)}, "Requires('tpu') belongs on a strategy"),
    "a rule without a reason": ({"rules": (Fixed("procsPerWorker", 1, reason=""),)}, "Fixed('procsPerWorker') has no reason"),
    "a snake_case field": ({"rules": (Fixed("procs_per_worker", 1, reason="r"),)}, "is not a spec field's wire path"),
}


@pytest.mark.parametrize("case", sorted(INCOMPLETE))
def test_an_incomplete_framework_is_refused_naming_the_piece(case: str) -> None:
    change, words = INCOMPLETE[case]
    with pytest.raises(IncompleteFramework, match=re.escape(words)):
        frameworks.register(dataclasses.replace(GOOD, **change))
    assert "jax" not in frameworks.names() and "JAX" not in frameworks.names()


def test_a_piece_left_out_fails_where_the_framework_is_written() -> None:
    with pytest.raises(TypeError, match="image"):
        Framework(name="jax", strategies=GOOD.strategies, extra="jax", tensorboard_writer="m:C")  # type: ignore[call-arg]


def test_a_name_is_registered_once() -> None:
    with pytest.raises(IncompleteFramework, match="'pytorch' is registered already"):
        frameworks.register(dataclasses.replace(PYTORCH))
    assert frameworks.get("pytorch") is PYTORCH


@pytest.mark.parametrize(("framework", "strategy"), [(f.name, s.name) for f in frameworks.frameworks() for s in f.strategies])
@pytest.mark.parametrize("debug", ["0", "1"])
def test_every_variable_a_launch_sets_is_reserved(framework: str, strategy: str, debug: str) -> None:
    """What the launcher sets a user's spec.env may not: the model and the CRD refuse it."""
    launch = build_launch(contract_env(framework, strategy, TANDEM_DEBUG=debug), ["python", "t.py"], PY)
    assert launch.env and all(frameworks.is_reserved_env(name) for name in set(launch.env) - {"PYTHONUNBUFFERED"})


def test_a_required_field_is_checked_when_left_unset() -> None:
    """The model checks a field's rules in a validator, which pydantic runs on an unset field
    only with validate_default: a field some strategy Requires must have it."""
    by_wire_name = {field.alias: field for field in TrainingJobSpec.model_fields.values()}
    for field in required_fields():
        assert by_wire_name[field].validate_default, field


def test_the_images_are_listed_for_the_scripts(capsys: pytest.CaptureFixture[str]) -> None:
    assert frameworks_main(["images"]) == 0
    assert capsys.readouterr().out.split() == ["pytorch-worker", "tensorflow-worker"]
    assert frameworks_main(["list"]) == 2


def test_each_framework_image_is_built_from_its_dockerfile() -> None:
    for framework in frameworks.frameworks():
        dockerfile = REPO / "images" / f"{framework.image}.Dockerfile"
        assert dockerfile.is_file(), dockerfile
        assert f'".[{framework.extra},metrics]"' in dockerfile.read_text()


# --- A new framework is one module: tests/support/toy_framework.py ----------------------------


@pytest.fixture
def toy() -> Iterator[Framework]:
    """The toy framework registered for one test; the real registry again afterwards."""
    frameworks.register(TOY)
    try:
        yield TOY
    finally:
        frameworks.unregister(TOY.name)


def toy_job(name: str = "toy", **spec: object) -> dict[str, object]:
    command = ["python", "-c", "import os; print('toy rank', os.environ['TOY_RANK'], 'of', os.environ['TOY_PEERS'])"]
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name},
            "spec": {"framework": "toy", "strategy": "ring", "workers": 2, "command": command,
                     "metrics": {"enabled": False}, **spec}}


def test_a_toy_framework_validates_with_its_own_rules(toy: Framework) -> None:
    job = TrainingJob.from_dict(toy_job())
    assert job.spec.worker_image == "tandem/toy-worker:0.1.0"
    refused = {
        "spec.procsPerWorker": (toy_job(procsPerWorker=2), "must be 1 for toy: a toy worker is one process"),
        "spec.strategy": (toy_job(strategy="ddp"), "'ddp' is not a toy strategy; use ring"),
        "spec.env[0].name": (toy_job(env=[{"name": "TOY_RANK", "value": "3"}]), "is set by Tandem's launcher"),
        "spec.tpu": (toy_job(tpu={"accelerator": "tpu-v6e-slice", "topology": "2x2"}), "only allowed with strategy tpu"),
    }
    for path, (document, words) in refused.items():
        with pytest.raises(SpecError) as error:
            TrainingJob.from_dict(document)
        assert error.value.problems == [(path, error.value.problems[0][1])] and words in error.value.problems[0][1]


def test_a_toy_framework_is_in_the_crd(toy: Framework) -> None:
    spec = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["properties"]["framework"]["enum"] == ["pytorch", "tensorflow", "toy"]
    assert "ring" in spec["properties"]["strategy"]["enum"]
    rules = {rule["message"]: rule["rule"] for rule in spec["x-kubernetes-validations"]}
    assert rules["procsPerWorker must be 1 for toy"] == (
        "self.framework != 'toy' || !has(self.procsPerWorker) || self.procsPerWorker == 1")
    assert any("ring for toy" in message for message in rules)
    env_rule = spec["properties"]["env"]["items"]["x-kubernetes-validations"][0]["rule"]
    assert "self.name.startsWith('TOY_')" in env_rule


def test_a_toy_framework_renders_its_image_and_contract(toy: Framework) -> None:
    objects = render(TrainingJob.from_dict(toy_job()))
    job = next(o for o in objects if o["kind"] == "Job")
    pod = job["spec"]["template"]
    container = pod["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert container["image"] == "tandem/toy-worker:0.1.0"
    assert (env["TANDEM_FRAMEWORK"], env["TANDEM_STRATEGY"]) == ("toy", "ring")
    assert pod["metadata"]["labels"]["app.kubernetes.io/name"] == "toy-worker"


def test_a_toy_framework_writes_tensorboard_through_its_writer(toy: Framework, tmp_path: Path) -> None:
    log = EventLog({"TANDEM_FRAMEWORK": "toy", "TANDEM_TENSORBOARD": "1", "TANDEM_TENSORBOARD_DIR": str(tmp_path),
                    "TANDEM_WORKER_INDEX": "1"})
    log.write([Step(0.0, 32.0, 0.5), Step(0.5, 32.0, 0.5)], loss=0.25)
    lines = (tmp_path / "worker-1" / "scalars.txt").read_text().splitlines()
    assert lines == ["tandem/throughput_samples_per_s 64 2", "tandem/step_time_s 0.5 2", "tandem/loss 0.25 2"]


def test_a_toy_framework_runs_two_workers_locally(toy: Framework, tmp_path: Path, job_name: str) -> None:
    """`tandem run` and both launchers are other processes: each registers the toy as an
    embedding program would, at start (sitecustomize), and reads it from its own registry."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "from tandem import frameworks\nfrom tests.support.toy_framework import TOY\nframeworks.register(TOY)\n")
    path = [str(site), str(REPO), str(REPO / "operator"), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, path))}
    job_file = tmp_path / "toy.yaml"
    job_file.write_text(yaml.safe_dump(toy_job(job_name)))
    result = run_tandem(*run_args(tmp_path / "runs", job_file=job_file, metrics=False), env=env, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    logs = [next((tmp_path / "runs" / job_name).glob(f"*/logs/attempt-0/worker-{i}.log")).read_text() for i in (0, 1)]
    peers = [line.split(" of ")[1] for log in logs for line in log.splitlines() if line.startswith("toy rank")]
    assert [f"toy rank {i}" in log for i, log in enumerate(logs)] == [True, True], logs
    assert len(peers) == 2 and peers[0] == peers[1] and len(set(peers[0].split(","))) == 2, peers
    assert "worker 0/2 toy ring -> python -c" in logs[0]  # the launcher's start line
