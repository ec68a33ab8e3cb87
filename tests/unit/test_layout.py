"""The package's seams: the CLI starts light, the Kubernetes API's statuses map to Tandem's
errors in one place, and a local run's figures and logs read back through the backend interface."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner
from kubernetes.client.rest import ApiException

from tandem.cli import cli
from tandem.errors import Conflict, Forbidden, Invalid, NotFound, TandemError, Unreachable
from tandem.kubeapi import api_error, error_type, translated
from tandem.local.backend import LocalBackend
from tests.conftest import EXAMPLES


def test_help_imports_neither_torch_ray_nor_kubernetes():
    probe = ("import sys; from click.testing import CliRunner; from tandem.cli import cli; "
             "r = CliRunner().invoke(cli, ['--help']); assert r.exit_code == 0, r.output; "
             "print(sorted(m for m in ('torch', 'ray', 'kubernetes', 'tensorflow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_every_command_is_listed_and_loads():
    for name in ("bench", "crd", "delete", "get", "list", "logs", "operator", "render", "run", "submit", "validate"):
        result = CliRunner().invoke(cli, [name, "--help"])
        assert result.exit_code == 0, (name, result.output)


def _api_exception(status: int, message: str = "", reason: str = "") -> ApiException:
    error = ApiException(status=status, reason="HTTP reason")
    error.body = json.dumps({"kind": "Status", "message": message, "reason": reason})
    return error


@pytest.mark.parametrize("status, kind", [
    (404, NotFound), (409, Conflict), (422, Invalid), (400, Invalid), (403, Forbidden), (401, Forbidden),
    (503, Unreachable), (500, TandemError),
])
def test_api_statuses_map_to_typed_errors(status, kind):
    assert error_type(status) is kind
    assert type(api_error(_api_exception(status, "why"), "TrainingJob ns/x")) is kind


def test_api_error_messages_say_what_to_do():
    assert "already exists" in str(api_error(_api_exception(409, reason="AlreadyExists"), "TrainingJob ns/x"))
    assert "CRD is not installed" in str(api_error(
        _api_exception(404, "the server could not find the requested resource"), "TrainingJob ns/x"))
    assert str(api_error(_api_exception(404), "TrainingJob ns/x")) == "TrainingJob ns/x not found"
    assert "refused by the cluster: spec.workers: Invalid value" in str(
        api_error(_api_exception(422, "spec.workers: Invalid value"), "TrainingJob ns/x"))


def test_translated_turns_transport_errors_into_unreachable():
    with pytest.raises(Unreachable, match="cannot reach the cluster at https://k:6443"):
        with translated("x", host="the cluster at https://k:6443"):
            raise ConnectionRefusedError("refused")
    with pytest.raises(NotFound):
        with translated("TrainingJob ns/x"):
            raise _api_exception(404)


def _local_run(tmp_path, job="j"):
    attempt = tmp_path / job / "20250101-000000-000000" / "logs" / "attempt-0"
    attempt.mkdir(parents=True)
    (attempt / "worker-0.log").write_text("zero\n")
    (attempt / "worker-1.log").write_text("one\n")
    return attempt.parent.parent


def test_local_backend_reads_logs_and_the_last_figures(tmp_path):
    run = _local_run(tmp_path)
    (run / "metrics.jsonl").write_text(json.dumps({"available": True, "throughput": 10.0}) + "\n"
                                       + json.dumps({"available": True, "throughput": 12.5, "final": True}) + "\n")
    backend = LocalBackend(tmp_path)
    assert list(backend.logs("j")) == [(0, "zero"), (1, "one")]
    assert list(backend.logs("j", worker=1)) == [(1, "one")]
    figures = backend.metrics("j")
    assert figures is not None and figures.throughput == 12.5
    assert backend.metrics("other") is None


def test_local_backend_names_what_is_missing(tmp_path):
    _local_run(tmp_path)
    with pytest.raises(NotFound, match="no local run of 'other'"):
        list(LocalBackend(tmp_path).logs("other"))
    with pytest.raises(NotFound, match="no log of worker 5"):
        list(LocalBackend(tmp_path).logs("j", worker=5))


def test_the_boundary_exits_with_the_errors_code(tmp_path):
    result = CliRunner().invoke(cli, ["logs", "nothing-here", "--runs-dir", str(tmp_path)])
    assert result.exit_code == 1 and "no local run of 'nothing-here'" in result.output
    result = CliRunner().invoke(cli, ["bench", str(EXAMPLES[0]), "--workers", "0"])
    assert result.exit_code == 2 and "--workers wants positive counts" in result.output
