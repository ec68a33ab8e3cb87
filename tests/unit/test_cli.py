"""The CLI's validate/render/crd commands, run as a user runs them."""

from __future__ import annotations

import json

import yaml
from click.testing import CliRunner

from tandem.cli import cli
from tests.conftest import EXAMPLES
from tests.support.specs import spec


def _write(tmp_path, name, document):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(document))
    return str(path)


def test_validate_five_broken_specs_one_line_each(tmp_path):
    broken = {
        "pair.yaml": spec(strategy="tpu"),
        "zero.yaml": spec(workers=0),
        "name.yaml": {**spec(), "metadata": {"name": "Not_A_Name"}},
        "tpu.yaml": spec(framework="tensorflow", strategy="tpu", workers=None,
                         tpu={"accelerator": "tpu-v4-podslice", "topology": "3x3x3"}),
        "gpus.yaml": spec(resources={"gpus": -2}),
    }
    files = [_write(tmp_path, name, doc) for name, doc in broken.items()]
    result = CliRunner().invoke(cli, ["validate", *files])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 5
    fields = ["spec.strategy", "spec.workers", "metadata.name", "spec.tpu", "spec.resources.gpus"]
    for path, field in zip(files, fields, strict=True):
        assert any(line.startswith(f"{path}: {field}: ") for line in lines), (field, lines)


def test_validate_examples_ok():
    result = CliRunner().invoke(cli, ["validate", *map(str, EXAMPLES)])
    assert result.exit_code == 0, result.output
    assert result.output.count(": ok (") == len(EXAMPLES)


def test_render_yaml_and_json():
    path = str(EXAMPLES[0])
    as_yaml = list(yaml.safe_load_all(CliRunner().invoke(cli, ["render", path]).output))
    as_json = json.loads(CliRunner().invoke(cli, ["render", path, "-o", "json"]).output)["items"]
    assert as_yaml == as_json and [o["kind"] for o in as_json] == ["Service", "Job", "NetworkPolicy"]


def test_render_set_override():
    result = CliRunner().invoke(cli, ["render", str(EXAMPLES[0]), "--set", "workers=5"])
    job = list(yaml.safe_load_all(result.output))[1]
    assert job["spec"]["completions"] == 5


def test_crd_command_prints_the_crd():
    result = CliRunner().invoke(cli, ["crd"])
    assert yaml.safe_load(result.output)["kind"] == "CustomResourceDefinition"


def test_operator_run_passes_the_image_pull_grace(monkeypatch):
    """The option reaches RunOptions (the chart's operator.imagePullGraceSeconds sets it); left
    out, the operator's default. The operator itself is not started: its run is replaced."""
    from tandem.controller import main as operator_main
    from tandem.controller.timing import IMAGE_PULL_GRACE_SECONDS

    seen = []
    monkeypatch.setattr(operator_main, "run", lambda options: seen.append(options) or 0)
    for argv in (["--image-pull-grace-seconds", "15"], []):
        result = CliRunner().invoke(cli, ["operator", "run", *argv])
        assert result.exit_code == 0, result.output
    assert [options.image_pull_grace_seconds for options in seen] == [15.0, IMAGE_PULL_GRACE_SECONDS]
    refused = CliRunner().invoke(cli, ["operator", "run", "--image-pull-grace-seconds", "0"])
    assert refused.exit_code == 2 and "--image-pull-grace-seconds" in refused.output
