"""GPU utilisation per worker, on a CPU machine: a fake `pynvml` module stands in
for nvidia-ml-py, injected through sys.modules; without it nothing is reported, nothing faked."""

from __future__ import annotations

import sys
import types
from types import SimpleNamespace

import pytest

from tandem.metrics import gpu
from tandem.metrics.reporter import Reporter


class NVMLError(Exception):
    pass


def fake_nvml(devices: list[tuple[int, int, int]], fail_after: int | None = None) -> types.ModuleType:
    """A pynvml with `devices` as (utilisation %, memory used, memory total); calls past
    `fail_after` samples raise NVMLError, as a driver that went away does."""
    module = types.ModuleType("pynvml")
    calls = {"samples": 0, "init": 0}

    def utilization(handle: int) -> SimpleNamespace:
        calls["samples"] += 1
        if fail_after is not None and calls["samples"] > fail_after * len(devices):
            raise NVMLError("GPU is lost")
        return SimpleNamespace(gpu=devices[handle][0], memory=0)

    module.nvmlInit = lambda: calls.__setitem__("init", calls["init"] + 1)  # type: ignore[attr-defined]
    module.nvmlDeviceGetCount = lambda: len(devices)  # type: ignore[attr-defined]
    module.nvmlDeviceGetHandleByIndex = lambda i: i  # type: ignore[attr-defined]
    module.nvmlDeviceGetHandleByUUID = lambda u: int(u.rsplit("-", 1)[1])  # type: ignore[attr-defined]
    module.nvmlDeviceGetUtilizationRates = utilization  # type: ignore[attr-defined]
    module.nvmlDeviceGetMemoryInfo = lambda h: SimpleNamespace(  # type: ignore[attr-defined]
        used=devices[h][1], total=devices[h][2], free=devices[h][2] - devices[h][1])
    module.calls = calls  # type: ignore[attr-defined]
    return module


GIB = 1 << 30


def test_a_worker_with_gpus_reports_their_mean_use_and_summed_memory(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml([(80, 10 * GIB, 80 * GIB), (40, 6 * GIB, 80 * GIB)]))
    sampler = gpu.sampler({"LOCAL_RANK": "0"})
    assert sampler is not None
    assert sampler.sample() == {"gpus": 2, "gpuUtil": 60.0, "gpuMemUsed": 16 * GIB, "gpuMemTotal": 160 * GIB}


def test_cuda_visible_devices_picks_the_workers_gpus(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml([(10, 1, 8), (90, 2, 8), (50, 3, 8)]))
    assert gpu.sampler({"CUDA_VISIBLE_DEVICES": "2"}).sample()["gpuUtil"] == 50.0
    assert gpu.sampler({"CUDA_VISIBLE_DEVICES": "GPU-x-1,0"}).sample()["gpuUtil"] == 50.0
    assert gpu.sampler({"CUDA_VISIBLE_DEVICES": ""}) is None  # CUDA told to see no GPU


def test_only_local_rank_0_samples(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml([(80, 1, 2)]))
    assert gpu.sampler({"LOCAL_RANK": "1"}) is None


def test_without_nvml_or_gpus_nothing_is_reported(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # `import pynvml` raises ImportError
    assert gpu.sampler({}) is None
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml([]))
    assert gpu.sampler({}) is None
    broken = fake_nvml([(1, 1, 1)])
    broken.nvmlInit = lambda: (_ for _ in ()).throw(NVMLError("Driver Not Loaded"))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pynvml", broken)
    assert gpu.sampler({}) is None


def test_a_failing_nvml_stops_sampling_and_says_it_once(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml([(70, 1, 2)], fail_after=1))
    sampler = gpu.sampler({})
    assert sampler.sample()["gpuUtil"] == 70.0
    assert sampler.sample() is None and sampler.sample() is None
    assert capsys.readouterr().err.count("GPU sampling stopped") == 1


def test_the_reporter_sends_gpu_figures_at_most_once_a_second(monkeypatch):
    """The daemon thread's info: the rank's steps and total, and the latest GPU sample."""
    nvml = fake_nvml([(55, 2 * GIB, 16 * GIB)])
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    rep = Reporter.__new__(Reporter)  # no thread, no shipper: the info alone
    rep._done, rep._total, rep._gpu, rep._gpu_at = 7, None, None, 0.0
    rep._sampler = gpu.sampler({})
    rep.total(100)
    info = rep._info()
    assert info == {"stepsDone": 7, "stepsTotal": 100, "gpus": 1, "gpuUtil": 55.0,
                    "gpuMemUsed": 2 * GIB, "gpuMemTotal": 16 * GIB}
    rep._info()
    assert nvml.calls["samples"] == 1  # within the second: the same sample, NVML not asked again


def test_gpu_text():
    assert gpu.gpu_text(87.4, 3 * GIB, 80 * GIB) == "87% 3.0/80.0 GiB"
    assert gpu.gpu_text(None, None, None) == "-"


@pytest.mark.parametrize("bad", [{"gpuUtil": -1}, {"gpuMemUsed": 1.5}, {"gpus": -2}])
def test_gpu_figures_are_checked_on_the_wire(bad):
    from tandem.figures.wire import Refused, batch, encode

    with pytest.raises(Refused):
        batch(encode(0, 0, [], bad))
