"""The SDK's full cycle and the cluster CLI, against the real control plane and operator."""

from __future__ import annotations

import os

import pytest

from tandem import Client, TrainingJob
from tandem.errors import AlreadyExists, Invalid, JobFailed, NotFound
from tests.support.columns import headers, table_rows
from tests.support.commands import run_tandem
from tests.support.kwok import job_document


def test_sdk_full_cycle(control_plane, operator, namespace):
    client = Client(kubeconfig=control_plane.kubeconfig, namespace=namespace)
    job = TrainingJob.from_dict(job_document("sdk-cycle", run_seconds=2))
    created = client.submit(job)
    assert created.metadata.uid and created.metadata.namespace == namespace
    with pytest.raises(AlreadyExists, match="already exists"):
        client.submit(job)
    seen = []
    done = client.wait("sdk-cycle", timeout=90, on_change=lambda j: seen.append((j.status or {}).get("phase")))
    assert done.status["phase"] == "Succeeded"
    assert "Succeeded" in seen
    assert [j.metadata.name for j in client.list()] == ["sdk-cycle"]
    metrics = client.metrics("sdk-cycle")
    assert metrics is not None and metrics.available is False  # no Ray in this cluster: said, not faked
    client.delete("sdk-cycle", wait=True)
    with pytest.raises(NotFound):
        client.get("sdk-cycle")


def test_sdk_errors(control_plane, operator, namespace):
    client = Client(kubeconfig=control_plane.kubeconfig, namespace=namespace)
    with pytest.raises(Invalid, match=r"spec\.workers"):
        client.submit({**job_document("bad"), "spec": {**job_document("bad")["spec"], "workers": 0}})
    failing = job_document("sdk-fails", run_seconds=1, exit_code=5, backoff=0)
    client.submit(failing)
    with pytest.raises(JobFailed, match="exit code 5"):
        client.wait("sdk-fails", timeout=60)


def tandem(control_plane, *args, timeout=120):
    return run_tandem(*args, env={**os.environ, "KUBECONFIG": control_plane.kubeconfig}, timeout=timeout)


def test_cli_submit_get_list_delete(control_plane, operator, namespace, tmp_path):
    import yaml

    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job_document("cli-job", run_seconds=2)))
    submitted = tandem(control_plane, "submit", str(path), "-n", namespace)
    assert submitted.returncode == 0 and "submitted" in submitted.stdout, submitted.stderr
    Client(kubeconfig=control_plane.kubeconfig, namespace=namespace).wait("cli-job", timeout=90)
    shown = tandem(control_plane, "get", "cli-job", "-n", namespace)
    assert "Succeeded" in shown.stdout and "restarts" in shown.stdout
    listed = tandem(control_plane, "list", "-n", namespace)
    (row,) = table_rows(listed.stdout)
    assert (row["NAME"], row["FRAMEWORK"], row["PHASE"]) == ("cli-job", "pytorch", "Succeeded"), listed.stdout
    # The same columns as kubectl's, by name: both come from api/columns.py.
    assert headers(listed.stdout) == headers(control_plane.kubectl("get", "tj", "-n", namespace).stdout)
    deleted = tandem(control_plane, "delete", "cli-job", "-n", namespace, "--wait")
    assert deleted.returncode == 0, deleted.stderr
    missing = tandem(control_plane, "get", "cli-job", "-n", namespace)
    assert missing.returncode == 1 and "not found" in missing.stderr


def test_run_on_kubernetes(control_plane, operator, namespace, tmp_path):
    import yaml

    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job_document("remote-run", run_seconds=2)))
    result = tandem(control_plane, "run", str(path), "--on", "kubernetes", "-n", namespace)
    assert result.returncode == 0, result.stderr
    assert "remote-run: Succeeded" in result.stdout + result.stderr
