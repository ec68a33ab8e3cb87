"""NVML check on a GPU host: does `tandem.metrics.gpu` see this machine's GPUs,
and does the utilisation it reports follow real work? Not a benchmark: a yes/no with figures.

    python benchmarks/gpu_util_check.py      # exit 0: checked; 2: no NVML or no GPU here (skipped); 1: failed

Samples once idle, then once a second while a CUDA matrix-multiply loop keeps GPU 0 busy for a
few seconds (torch), and checks: the GPU count matches torch.cuda.device_count(), the memory
total matches torch's, memory in use rose with the loop's tensors, and utilisation under load
is well above idle. Prints one JSON line with the figures. benchmarks/gpu_check.sh calls it.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "operator"))

from tandem.metrics import gpu  # after the path above

LOAD_SECONDS = 6.0


def main() -> int:
    visible = {k: v for k, v in os.environ.items() if k == "CUDA_VISIBLE_DEVICES"}
    sampler = gpu.sampler({"LOCAL_RANK": "0", **visible})
    if sampler is None:
        print(json.dumps({"check": "gpu_util", "skipped": "no pynvml (nvidia-ml-py) or no NVIDIA GPU"}))
        return 2
    import torch

    idle = sampler.sample()
    stop = threading.Event()

    def load() -> None:
        a = torch.randn(8192, 8192, device="cuda:0")
        while not stop.is_set():
            a = (a @ a).clamp_(-1, 1)
        torch.cuda.synchronize()

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    time.sleep(1.0)
    busy = []
    deadline = time.monotonic() + LOAD_SECONDS
    while time.monotonic() < deadline:
        busy.append(sampler.sample())
        time.sleep(gpu.SAMPLE_EVERY)
    stop.set()
    worker.join()
    assert idle is not None and all(busy)
    peak = max(s["gpuUtil"] for s in busy)
    expected_total = sum(torch.cuda.get_device_properties(i).total_memory for i in range(torch.cuda.device_count()))
    checks = {
        "gpus_match_torch": idle["gpus"] == torch.cuda.device_count(),
        # NVML counts memory the driver reserves that torch's figure leaves out: within 5%.
        "memory_total_matches_torch": abs(idle["gpuMemTotal"] - expected_total) <= 0.05 * expected_total,
        "memory_used_rose_under_load": max(s["gpuMemUsed"] for s in busy) > idle["gpuMemUsed"],
        "utilisation_rose_under_load": peak >= 50.0 / idle["gpus"] and peak > idle["gpuUtil"],
    }
    print(json.dumps({"check": "gpu_util", "idle": idle, "busy_peak_util": peak, "samples": len(busy),
                      "checks": checks, "ok": all(checks.values())}))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
