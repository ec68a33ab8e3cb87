"""Local GPU assignment (tandem.local.gpus): each worker its own devices, and the one-line refusal
of a run that needs more GPUs than the machine has. The machine's devices are faked."""

from __future__ import annotations

import os
import stat

import pytest

from tandem.api import TrainingJob
from tandem.errors import SpecError
from tandem.local.gpus import (
    ON_CPU,
    VISIBLE_DEVICES,
    available_gpus,
    describe,
    parse_nvidia_smi,
    parse_visible,
    partition,
    probe_gpus,
    worker_gpu_env,
)
from tandem.local.plan import plan_workers
from tandem.render import render_one
from tests.support.specs import spec

SMI_H100_X2 = (
    "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-1a2b3c4d-0000-0000-0000-000000000000)\n"
    "GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-1a2b3c4d-0000-0000-0000-000000000001)\n"
)
SMI_MIG = (
    "GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-aaaa)\n"
    "  MIG 3g.20gb     Device  0: (UUID: MIG-bbbb)\n"
    "  MIG 3g.20gb     Device  1: (UUID: MIG-cccc)\n"
)


def machine(count: int):
    """A probe that finds `count` GPUs, and records that it was asked."""
    calls: list[int] = []

    def probe() -> tuple[list[str], str]:
        calls.append(1)
        return [str(i) for i in range(count)], "nvidia-smi -L"

    probe.calls = calls  # type: ignore[attr-defined]
    return probe


def job(workers: int = 2, gpus: int = 1, procs: int = 1, framework: str = "pytorch", env=None) -> TrainingJob:
    strategy = "ddp" if framework == "pytorch" else "multi-worker-mirrored"
    return TrainingJob.from_dict(spec(workers=workers, procsPerWorker=procs, framework=framework, strategy=strategy,
                                      resources={"gpus": gpus}, env=env or []))


def test_each_worker_gets_its_own_run_of_devices():
    assert partition(3, 2, [str(i) for i in range(8)], "x") == ["0,1", "2,3", "4,5"]
    assert partition(2, 1, ["0", "1"], "x") == ["0", "1"]


def test_gpus_per_worker_are_per_worker_not_per_process():
    """resources.gpus is the pod's nvidia.com/gpu limit: procsPerWorker processes share them and
    each picks cuda:LOCAL_RANK within them, as in a pod."""
    env = worker_gpu_env(job(workers=2, gpus=2, procs=2), environ={}, probe=machine(4))
    assert env == [{VISIBLE_DEVICES: "0,1"}, {VISIBLE_DEVICES: "2,3"}]


def test_a_run_needing_more_gpus_than_there_are_is_refused_in_one_line():
    probe = machine(1)
    with pytest.raises(SpecError) as refused:
        worker_gpu_env(job(workers=2, gpus=1), environ={}, probe=probe)
    (path, message), = refused.value.problems
    assert path == "spec.resources.gpus"
    assert "\n" not in message
    assert "needs 2 GPUs" in message and "has 1 " in message and ON_CPU in message
    assert ON_CPU == "--set resources.gpus=0"


def test_procs_per_worker_counts_once_per_worker():
    with pytest.raises(SpecError, match=r"needs 4 GPUs .* has 3 "):
        worker_gpu_env(job(workers=2, gpus=2, procs=2), environ={}, probe=machine(3))


def test_zero_gpus_hides_every_gpu_and_probes_nothing():
    """gpus 0 runs on CPU, as the field says: no worker sees a GPU (else two workers on a 1-GPU
    host would both take cuda:0), and no nvidia-smi is run."""
    probe = machine(8)
    assert worker_gpu_env(job(workers=2, gpus=0), environ={}, probe=probe) == [{VISIBLE_DEVICES: ""}] * 2
    assert probe.calls == []


def test_an_inherited_cuda_visible_devices_is_the_set_to_hand_out():
    probe = machine(8)
    env = worker_gpu_env(job(workers=2, gpus=1), environ={VISIBLE_DEVICES: "3,5"}, probe=probe)
    assert env == [{VISIBLE_DEVICES: "3"}, {VISIBLE_DEVICES: "5"}]
    assert probe.calls == []
    with pytest.raises(SpecError, match=r"has 1 \(CUDA_VISIBLE_DEVICES='GPU-ab'\)"):
        worker_gpu_env(job(workers=2, gpus=1), environ={VISIBLE_DEVICES: "GPU-ab"}, probe=probe)


def test_cuda_visible_devices_is_read_as_cuda_reads_it():
    assert parse_visible("") == []
    assert parse_visible("-1") == []
    assert parse_visible("0, 2,-1,3") == ["0", "2"]
    assert parse_visible("GPU-aa,MIG-bb") == ["GPU-aa", "MIG-bb"]
    assert available_gpus({VISIBLE_DEVICES: ""}, machine(4)) == ([], "CUDA_VISIBLE_DEVICES=''")


def test_a_spec_that_sets_cuda_visible_devices_chooses_its_own_devices():
    env = worker_gpu_env(job(workers=2, gpus=1, env=[{"name": VISIBLE_DEVICES, "value": "7"}]),
                         environ={}, probe=machine(0))
    assert env == [{}, {}]


def test_tensorflow_workers_get_their_devices_the_same_way():
    env = worker_gpu_env(job(workers=2, gpus=2, framework="tensorflow"), environ={}, probe=machine(4))
    assert env == [{VISIBLE_DEVICES: "0,1"}, {VISIBLE_DEVICES: "2,3"}]


def test_nvidia_smi_listing():
    assert parse_nvidia_smi(SMI_H100_X2) == ["0", "1"]
    assert parse_nvidia_smi(SMI_MIG) == ["0"]
    assert parse_nvidia_smi("No devices were found\n") == []


def _fake_smi(tmp_path, script: str):
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\n" + script)
    smi.chmod(smi.stat().st_mode | stat.S_IXUSR)
    return str(smi)


def test_probe_reads_nvidia_smi_then_the_driver_folder(tmp_path):
    smi = _fake_smi(tmp_path, f"printf '{SMI_H100_X2}'\n")
    assert probe_gpus(smi=smi, driver_dir=tmp_path / "none") == (["0", "1"], "nvidia-smi -L")
    failing = _fake_smi(tmp_path, "echo 'NVIDIA-SMI has failed' >&2; exit 9\n")
    driver = tmp_path / "gpus"
    for bus in ("0000:01:00.0", "0000:02:00.0", "0000:03:00.0"):
        (driver / bus).mkdir(parents=True)
    assert probe_gpus(smi=failing, driver_dir=driver) == (["0", "1", "2"], str(driver))
    assert probe_gpus(smi=str(tmp_path / "absent"), driver_dir=tmp_path / "none") == ([], "no NVIDIA driver found")


def test_each_worker_plan_carries_its_own_devices():
    training = job(workers=2, gpus=1)
    plans = plan_workers(render_one(training, "Job"), [20001, 20002], {"A": "1"}, python="/py",
                         worker_env=worker_gpu_env(training, environ={}, probe=machine(2)))
    assert [p.env[VISIBLE_DEVICES] for p in plans] == ["0", "1"]
    assert all(p.env["A"] == "1" for p in plans)
    with pytest.raises(ValueError):
        plan_workers(render_one(training, "Job"), [20001, 20002], python="/py", worker_env=[{}])


def test_the_cli_process_environment_is_read_by_default(monkeypatch):
    monkeypatch.setitem(os.environ, VISIBLE_DEVICES, "4")
    assert worker_gpu_env(job(workers=1, gpus=1), probe=machine(0)) == [{VISIBLE_DEVICES: "4"}]


def test_the_run_names_each_worker_s_gpus_only_when_it_has_some():
    assert describe([{VISIBLE_DEVICES: "0,1"}, {VISIBLE_DEVICES: "2,3"}]) == "GPUs: worker 0: 0,1; worker 1: 2,3"
    assert describe([{VISIBLE_DEVICES: ""}] * 2) == ""
    assert describe([{}, {}]) == ""
