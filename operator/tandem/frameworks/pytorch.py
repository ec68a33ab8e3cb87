"""PyTorch DistributedDataParallel: every worker runs torchrun, which starts procsPerWorker ranks.

Static rendezvous at worker 0's store (`--rdzv-backend=static`), so no etcd and no c10d
negotiation; `--max-restarts=0`, because Tandem restarts the whole group itself (backoffLimit)
and a second restart loop inside one worker would hide failures.
"""

from __future__ import annotations

from ..contract import ENV_PROCS_PER_WORKER
from ..errors import ContractError
from .base import Contract, Framework, Strategy, WorkerLaunch

#: Module run (by exec) in front of every torchrun worker: it sets PR_SET_PDEATHSIG so that
#: workers die with torchrun, which itself dies with the launcher (launch/guard.py).
GUARD_MODULE = "tandem.launch.guard"
#: torchrun wrapped so that the exit code of the failing worker (or the signal) reaches us.
TORCHRUN_MODULE = "tandem.launch.torchrun"


def torchrun_flags(contract: Contract) -> list[str]:
    """torchrun's options: static rendezvous at the coordinator, no restarts of its own, and
    ``--no-python``, so that every worker can be the guard exec'ing the command. The default (no
    ``--tee``/``--redirects``) keeps worker output plain, unprefixed, on the pod's stdout/stderr."""
    return [
        f"--nnodes={contract.workers}",
        f"--node-rank={contract.worker_index}",
        f"--nproc-per-node={contract.procs_per_worker}",
        "--rdzv-backend=static",
        f"--master-addr={contract.coordinator}",
        f"--master-port={contract.port}",
        "--max-restarts=0",
        "--no-python",
    ]


def torchrun_argv(contract: Contract, command: tuple[str, ...], python: str) -> list[str]:
    """torchrun wrapping every worker in the guard; a Python command already names the
    launcher's interpreter, as torchrun itself would use."""
    return [python, "-m", TORCHRUN_MODULE, *torchrun_flags(contract), python, "-m", GUARD_MODULE, "--", *command]


def torch_env(contract: Contract) -> dict[str, str]:
    """What torchrun would set for the only process of a worker (procsPerWorker 1).

    Used in debug mode, where the script runs without torchrun's agent so that it keeps the
    terminal; rank 0 then hosts the rendezvous store itself (env:// initialisation).
    """
    if contract.procs_per_worker != 1:
        raise ContractError(ENV_PROCS_PER_WORKER, f"must be 1 to debug (got {contract.procs_per_worker})",
                            "run with --set procsPerWorker=1 while debugging")
    return {
        "MASTER_ADDR": contract.coordinator,
        "MASTER_PORT": str(contract.port),
        "WORLD_SIZE": str(contract.workers),
        "RANK": str(contract.worker_index),
        "GROUP_RANK": str(contract.worker_index),
        "LOCAL_RANK": "0",
        "LOCAL_WORLD_SIZE": "1",
    }


def ddp_launch(contract: Contract, command: tuple[str, ...], python: str) -> WorkerLaunch:
    """torchrun around the command; in debug mode the command itself, with torchrun's variables."""
    if contract.debug:
        return WorkerLaunch(argv=command, env=torch_env(contract))
    shown = ("torchrun", *torchrun_flags(contract), "--", *command)
    return WorkerLaunch(argv=tuple(torchrun_argv(contract, command, python)), shown=shown)


DDP = Strategy(
    name="ddp",
    launch=ddp_launch,
    needs_coordinator=True,
    sets_env=("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "GROUP_RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE"),
)

PYTORCH = Framework(
    name="pytorch",
    strategies=(DDP,),
    image="pytorch-worker",
    extra="torch",
    tensorboard_writer="tandem.metrics.tensorboard:TorchWriter",
)
