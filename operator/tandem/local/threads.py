"""How many OpenMP threads each worker process of a local run gets (`OMP_NUM_THREADS`).

The policy is torchrun's, so that `tandem run` trains as fast as the launcher a user would
otherwise pick (bench B1, docs/benchmarks.md):

- several processes on this machine (workers x procsPerWorker > 1): **1 thread each**, what
  `torchrun --standalone --nproc-per-node=N` gives its processes. With more, co-located ranks
  contend: on a 16-core host, 2 ranks of the small B1 model at 8 threads each ran at 0.53x
  torchrun's speed; on 2 cores, ranks with no limit at all ran up to 30x slower.
- one process: **every physical core this process may run on** (its affinity, SMT siblings
  counted once), which is what torch takes by itself and what torchrun leaves it with.

A large compute-bound model on a many-core host can train faster with cores/processes threads
each; a small one is slower so (thread start-up and synchronisation per tiny operation). The
user decides by setting `OMP_NUM_THREADS`, which always wins over this policy: in the spec's
`env` (`--set` works too; it also reaches a cluster's pods) or, for local runs, exported in the
shell that starts `tandem run` (torchrun honours it there as well).

Pods on a cluster are another matter: there a worker has its own `resources.cpu`, shared by its
processes (render.context.omp_threads).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping

from ..api.model import TrainingJob
from ..contract import ENV_OMP_THREADS

CPU_TOPOLOGY = Path("/sys/devices/system/cpu")


def local_omp_threads(processes_on_host: int, host_cores: int) -> int:
    """Threads per process when `processes_on_host` share `host_cores` cores (the policy above)."""
    if processes_on_host > 1:
        return 1
    return max(1, host_cores)


def physical_cores(cpus: Iterable[int], topology: Path = CPU_TOPOLOGY) -> int:
    """Cores among `cpus` (this process's affinity), SMT siblings counted once, as torch counts
    them for its default; where Linux's topology files cannot be read, every CPU counts."""
    cpus = list(cpus)
    cores = set()
    for cpu in cpus:
        try:
            package = (topology / f"cpu{cpu}" / "topology" / "physical_package_id").read_text().strip()
            core = (topology / f"cpu{cpu}" / "topology" / "core_id").read_text().strip()
        except OSError:
            return max(1, len(cpus))
        cores.add((package, core))
    return max(1, len(cores))


def local_thread_env(job: TrainingJob, launcher_env: Mapping[str, str], host_cores: int) -> dict[str, str]:
    """The `OMP_NUM_THREADS` every local worker gets. The spec's own value needs nothing here
    (it is in the rendered env); one exported where `tandem run` was started is passed on, as
    torchrun would; otherwise the policy's."""
    if any(e.name == ENV_OMP_THREADS for e in job.spec.env):
        return {}
    if launcher_env.get(ENV_OMP_THREADS, "").strip():
        return {ENV_OMP_THREADS: launcher_env[ENV_OMP_THREADS]}
    processes = job.spec.worker_count * job.spec.procs_per_worker
    return {ENV_OMP_THREADS: str(local_omp_threads(processes, host_cores))}
