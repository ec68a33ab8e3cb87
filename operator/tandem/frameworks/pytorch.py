"""PyTorch DistributedDataParallel: every worker runs torchrun, which starts procsPerWorker ranks.

A job without in-place restarts (runPolicy.inPlaceRestarts 0, the default) rendezvouses statically
at worker 0 (`--rdzv-backend=static --node-rank=<worker index>`): ranks are worker indices at any
size, and nothing is restarted inside a worker. Dynamic rendezvous orders nodes by their addresses,
so past ten workers the pods' names put job-10 before job-2, and it is not yet proven on real pods
as static is; a job pays for it only when it asks for in-place restarts.

With in-place restarts: dynamic rendezvous (`--rdzv-backend=c10d`) at a store that worker 0's torchrun agent hosts (no
etcd), so that the agents can restart the training processes in place: `--max-restarts` is
runPolicy.inPlaceRestarts (0 by default), after which the failure reaches Tandem's whole-group
restart (failurePolicy, backoffLimit). The rendezvous id names the group (job and whole-group
restart), so a restarted group never meets an old one's agents. The training processes' own store
is made afresh at each rendezvous (TORCH_DISABLE_SHARE_RDZV_TCP_STORE): torch's shared one keeps
the first round's address on an agent whose rank changed, and the ranks of a restarted round then
meet at two stores (gloo: "Connection refused" on a stale peer address).
"""

from __future__ import annotations

from ..contract import ENV_PROCS_PER_WORKER
from ..errors import ContractError
from .base import Contract, Framework, Strategy, WorkerLaunch, cluster_hosts, split_host_port

#: Module run (by exec) in front of every torchrun worker: it sets PR_SET_PDEATHSIG so that
#: workers die with torchrun, which itself dies with the launcher (launch/guard.py).
GUARD_MODULE = "tandem.launch.guard"
#: torchrun wrapped so that the exit code of the failing worker (or the signal) reaches us.
TORCHRUN_MODULE = "tandem.launch.torchrun"
#: torch's switch off the sharing of the rendezvous store's server with the training processes.
NO_SHARED_STORE = "TORCH_DISABLE_SHARE_RDZV_TCP_STORE"


def rendezvous_id(contract: Contract) -> str:
    """One id per group: the job and its whole-group restart."""
    return f"{contract.job}-{contract.restart}"


def local_address(contract: Contract) -> str:
    """This worker's own address, where rank 0's store listens if this worker holds rank 0: the
    local executor's loopback host, or the pod's DNS name (torch's guess, the host's FQDN, need
    not be reachable from the other workers, nor inside a local run's network namespace)."""
    hosts = contract.worker_hosts or cluster_hosts(contract.job, contract.namespace, contract.workers, contract.port or 1)
    return split_host_port(hosts[contract.worker_index])[0]


def nnodes(contract: Contract) -> str:
    """torchrun's --nnodes: MIN:MAX for an elastic job (training starts once MIN agents joined and
    grows as more join), else the fixed count."""
    if contract.min_workers and contract.min_workers < contract.workers:
        return f"{contract.min_workers}:{contract.workers}"
    return str(contract.workers)


def torchrun_flags(contract: Contract) -> list[str]:
    """torchrun's options with in-place restarts: c10d rendezvous at the coordinator, whose store worker 0's agent hosts
    (``is_host``, said outright: locally every worker's coordinator address is this machine's, and
    torch's guess would make each agent try to host it), in-place restarts up to the budget, and
    ``--no-python``, so that every worker can be the guard exec'ing the command. The default (no
    ``--tee``/``--redirects``) keeps worker output plain, unprefixed, on the pod's stdout/stderr.
    ``--node-rank`` is dropped: dynamic rendezvous gives group ranks in order of arrival."""
    if not contract.in_place_restarts:
        return static_flags(contract)
    host = "true" if contract.worker_index == 0 else "false"
    return [
        f"--nnodes={nnodes(contract)}",
        f"--nproc-per-node={contract.procs_per_worker}",
        "--rdzv-backend=c10d",
        f"--rdzv-endpoint={contract.coordinator}:{contract.port}",
        f"--rdzv-id={rendezvous_id(contract)}",
        f"--rdzv-conf=is_host={host}",
        f"--local-addr={local_address(contract)}",
        f"--max-restarts={contract.in_place_restarts}",
        "--no-python",
    ]


def static_flags(contract: Contract) -> list[str]:
    """torchrun's options without in-place restarts: static rendezvous at the coordinator, the
    worker index as node rank, no restart inside the worker (Tandem's group restart decides)."""
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
    env = {NO_SHARED_STORE: "1"} if contract.in_place_restarts else {}
    return WorkerLaunch(argv=tuple(torchrun_argv(contract, command, python)), env=env, shown=shown)


DDP = Strategy(
    name="ddp",
    launch=ddp_launch,
    needs_coordinator=True,
    sets_env=("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "GROUP_RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE",
              NO_SHARED_STORE),
)

PYTORCH = Framework(
    name="pytorch",
    strategies=(DDP,),
    image="pytorch-worker",
    extra="torch",
    tensorboard_writer="tandem.metrics.tensorboard:TorchWriter",
)
