"""Which GPUs each local worker gets, and the refusal of a run this machine cannot hold.

On a cluster, `resources.gpus` is what each worker pod asks for (`nvidia.com/gpu`), and the device
plugin shows the pod that many GPUs, numbered from 0. A local worker gets the same view through
CUDA_VISIBLE_DEVICES, which both PyTorch and TensorFlow honour: worker i gets the i-th run of
`resources.gpus` devices, so no two workers share one (two DDP ranks on one GPU die inside NCCL,
"Duplicate GPU detected"). A worker's `procsPerWorker` processes share its devices, and each
picks `cuda:LOCAL_RANK` within them, as in a pod; TensorFlow's one process per worker uses all of
them. `resources.gpus: 0` hides every GPU, so the worker runs on CPU, as the field says.

The run is refused before anything starts when it needs more GPUs than Tandem may hand out: the
devices of an inherited CUDA_VISIBLE_DEVICES, else those the NVIDIA driver lists (`nvidia-smi -L`,
else /proc/driver/nvidia/gpus). The probe runs no framework: importing torch in the CLI costs
seconds. A spec that sets CUDA_VISIBLE_DEVICES in `spec.env` chooses the devices itself; Tandem
then neither sets nor checks them.

Pure functions (`parse_*`, `partition`, `worker_gpu_env`, `describe`) apart from the one probe (`probe_gpus`),
which callers pass in, so the unit tests fake the machine's devices.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

from ..api.model import TrainingJob
from ..errors import SpecError

#: The variable CUDA (so PyTorch) and TensorFlow read to choose which GPUs a process sees.
VISIBLE_DEVICES = "CUDA_VISIBLE_DEVICES"
#: Where the NVIDIA driver lists one folder per GPU, when nvidia-smi is not on PATH.
DRIVER_GPUS = Path("/proc/driver/nvidia/gpus")
#: The refusal's advice: the `--set` key and value that run the same job on CPU.
ON_CPU = "--set resources.gpus=0"

_SMI_GPU = re.compile(r"^GPU (\d+):")


def parse_visible(value: str) -> list[str]:
    """The devices a CUDA_VISIBLE_DEVICES value allows, in order, as CUDA reads it: entries up to
    the first invalid one (`-1` is the usual way to hide every GPU); '' allows none."""
    devices: list[str] = []
    for entry in (e.strip() for e in value.split(",")):
        if not entry or entry.startswith("-"):
            break
        devices.append(entry)
    return devices


def parse_nvidia_smi(listing: str) -> list[str]:
    """GPU indices from `nvidia-smi -L` ("GPU 0: NVIDIA H100 ... (UUID: GPU-...)"); its indented
    MIG lines are not GPUs of their own here."""
    return [m.group(1) for m in map(_SMI_GPU.match, listing.splitlines()) if m]


def probe_gpus(smi: str = "nvidia-smi", driver_dir: Path = DRIVER_GPUS) -> tuple[list[str], str]:
    """This machine's GPUs as CUDA_VISIBLE_DEVICES entries, and how they were found (for the
    refusal line). No GPU, no driver, or a driver that does not answer: none."""
    try:
        done = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20, check=False)
        if done.returncode == 0:
            return parse_nvidia_smi(done.stdout), "nvidia-smi -L"
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        count = sum(1 for _ in driver_dir.iterdir())
    except OSError:
        return [], "no NVIDIA driver found"
    return [str(i) for i in range(count)], str(driver_dir)


def available_gpus(environ: Mapping[str, str],
                   probe: Callable[[], tuple[list[str], str]] = probe_gpus) -> tuple[list[str], str]:
    """The GPUs Tandem may hand out: an inherited CUDA_VISIBLE_DEVICES is the user's choice of
    devices for everything started from this shell, so only those, else every GPU found."""
    if VISIBLE_DEVICES in environ:
        return parse_visible(environ[VISIBLE_DEVICES]), f"{VISIBLE_DEVICES}={environ[VISIBLE_DEVICES]!r}"
    return probe()


def partition(workers: int, gpus_per_worker: int, devices: Sequence[str], source: str) -> list[str]:
    """Worker i's CUDA_VISIBLE_DEVICES: the i-th run of `gpus_per_worker` devices ('' for none).

    Raises SpecError, one line: how many the run needs, how many there are, how to run on CPU."""
    if gpus_per_worker == 0:
        return [""] * workers
    needed = workers * gpus_per_worker
    if needed > len(devices):
        raise SpecError([(
            "spec.resources.gpus",
            f"this run needs {needed} GPUs ({workers} worker{'s' if workers != 1 else ''} x {gpus_per_worker}) "
            f"but this machine has {len(devices)} ({source}); to run on CPU instead: {ON_CPU}",
        )])
    return [",".join(devices[i * gpus_per_worker:(i + 1) * gpus_per_worker]) for i in range(workers)]


def worker_gpu_env(job: TrainingJob, environ: Optional[Mapping[str, str]] = None,
                   probe: Callable[[], tuple[list[str], str]] = probe_gpus) -> list[dict[str, str]]:
    """Each worker's device variables, in worker order; probes only when the run asks for GPUs."""
    spec = job.spec
    if any(e.name == VISIBLE_DEVICES for e in spec.env):
        return [{} for _ in range(spec.worker_count)]
    devices, source = ([], "") if not spec.resources.gpus else available_gpus(
        os.environ if environ is None else environ, probe)
    return [{VISIBLE_DEVICES: value} for value in partition(spec.worker_count, spec.resources.gpus, devices, source)]


def describe(gpu_env: Sequence[Mapping[str, str]]) -> str:
    """The GPUs each worker got, for the run's first lines; '' when Tandem handed out none."""
    given = [env.get(VISIBLE_DEVICES, "") for env in gpu_env]
    if not any(given):
        return ""
    return "GPUs: " + "; ".join(f"worker {i}: {devices or 'none'}" for i, devices in enumerate(given))
