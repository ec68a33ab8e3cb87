"""A Cloud TPU slice on GKE: one worker per TPU VM host, told its place by TPU_WORKER_*.

A strategy rather than a framework: the TPU runtime reads the same two variables whichever
framework drives it (TensorFlow's TPUStrategy here; JAX's jax.distributed would too), so a
framework that runs on TPU slices lists this strategy among its own.
"""

from __future__ import annotations

from .base import Contract, Fixed, Requires, Strategy, WorkerLaunch, split_host_port


def tpu_env(contract: Contract) -> dict[str, str]:
    """TPU_WORKER_ID / TPU_WORKER_HOSTNAMES as GKE TPU slices expect them (hosts, no ports)."""
    hostnames = [split_host_port(h)[0] for h in contract.worker_hosts]
    return {"TPU_WORKER_ID": str(contract.worker_index), "TPU_WORKER_HOSTNAMES": ",".join(hostnames)}


def tpu_launch(contract: Contract, command: tuple[str, ...], python: str) -> WorkerLaunch:
    return WorkerLaunch(argv=command, env=tpu_env(contract))


TPU = Strategy(
    name="tpu",
    launch=tpu_launch,
    needs_hosts=True,
    sets_env=("TPU_WORKER_*",),
    rules=(
        Requires("tpu", example="{accelerator: tpu-v5-lite-podslice, topology: 2x4}"),
        Fixed("resources.gpus", 0, reason="TPU chips come from spec.tpu"),
    ),
)
