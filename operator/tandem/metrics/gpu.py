"""GPU utilisation and memory of this worker, sampled from NVML (nvidia-ml-py's `pynvml`).

The reporter's daemon thread calls `sample()` about once a second, never the training thread
(NVML calls are ctypes calls, which release the GIL while they run). `pynvml` is imported only
here and only when sampling starts: without it, without a driver, or without GPUs, `sampler()`
returns None and nothing is reported; no figure is ever made up. One rank per worker (local rank
0) samples, so a worker's GPUs are counted once.

Which GPUs: those of CUDA_VISIBLE_DEVICES when it names them (indices or UUIDs), else every GPU
NVML sees (in a Kubernetes pod, the device plugin's allocation).
"""

from __future__ import annotations

import sys
from typing import Any, Mapping, Optional

#: Seconds between samples.
SAMPLE_EVERY = 1.0


class Sampler:
    """NVML handles of this worker's GPUs; `sample()` sums them up."""

    def __init__(self, nvml: Any, handles: list[Any]):
        self.nvml = nvml
        self.handles = handles
        self.failed = False

    def sample(self) -> Optional[dict[str, Any]]:
        """{"gpus", "gpuUtil" (mean %), "gpuMemUsed", "gpuMemTotal" (bytes)}, or None once NVML fails."""
        if self.failed:
            return None
        try:
            rates = [self.nvml.nvmlDeviceGetUtilizationRates(h).gpu for h in self.handles]
            memory = [self.nvml.nvmlDeviceGetMemoryInfo(h) for h in self.handles]
        except Exception as error:  # noqa: BLE001 - NVMLError and its many children: stop sampling, say it once
            self.failed = True
            print(f"tandem.metrics: GPU sampling stopped ({error})", file=sys.stderr, flush=True)
            return None
        return {
            "gpus": len(self.handles),
            "gpuUtil": min(100.0, max(0.0, sum(float(r) for r in rates) / len(rates))),
            "gpuMemUsed": sum(int(m.used) for m in memory),
            "gpuMemTotal": sum(int(m.total) for m in memory),
        }


def _handles(nvml: Any, visible: Optional[str]) -> list[Any]:
    count = int(nvml.nvmlDeviceGetCount())
    if visible is None or visible.strip() == "":
        return [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)] if visible is None else []
    handles = []
    for name in (part.strip() for part in visible.split(",")):
        if name.isdigit():
            if int(name) < count:
                handles.append(nvml.nvmlDeviceGetHandleByIndex(int(name)))
        elif name.startswith(("GPU-", "MIG-")):
            handles.append(nvml.nvmlDeviceGetHandleByUUID(name))
    return handles


def sampler(env: Mapping[str, str]) -> Optional[Sampler]:
    """A Sampler of this worker's GPUs when NVML and at least one GPU are there, from local rank 0 only;
    else None (and nothing is reported)."""
    if (env.get("LOCAL_RANK") or "0") != "0":
        return None
    try:
        import pynvml  # type: ignore[import-not-found,unused-ignore]  # nvidia-ml-py: in GPU images only

        pynvml.nvmlInit()
        handles = _handles(pynvml, env.get("CUDA_VISIBLE_DEVICES"))
    except Exception:  # noqa: BLE001 - no package, no driver, no device: no GPU figures, and nothing to say
        return None
    if not handles:
        return None
    return Sampler(pynvml, handles)


def gpu_text(utilization: Optional[float], used: Optional[int], total: Optional[int]) -> str:
    """`87% 31.2/80.0 GiB` for a table; `-` without figures."""
    if utilization is None:
        return "-"
    memory = f" {used / 2**30:.1f}/{total / 2**30:.1f} GiB" if used is not None and total else ""
    return f"{utilization:.0f}%{memory}"
