"""Pure translation of Tandem's worker env contract into the framework's own launch.

Every rendered pod (and every local worker process) gets the same ``TANDEM_*`` variables;
this module turns them, plus the user's command, into the argv to run and the extra
environment the framework expects (torchrun flags, ``TF_CONFIG``, ``TPU_WORKER_*``).
Nothing here reads the process environment, spawns or prints: callers pass a mapping in and
get values out, so every rule is unit-testable in milliseconds.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

from ..contract import (
    ENV_COORDINATOR,
    ENV_DEBUG,
    ENV_FRAMEWORK,
    ENV_JOB,
    ENV_METRICS_ADDRESS,
    ENV_NAMESPACE,
    ENV_PORT,
    ENV_PROCS_PER_WORKER,
    ENV_RESTART,
    ENV_STRATEGY,
    ENV_WORKER_HOSTS,
    ENV_WORKER_INDEX,
    ENV_WORKERS,
    FRAMEWORKS,
    STRATEGIES,
    worker_host,
)
from ..errors import ContractError

#: What the renderer / local executor set; the fix named in every error points there.
_FIX = "it is set by Tandem's renderer or local executor (tandem run)"

#: Linux's limit on one environment string (MAX_ARG_STRLEN, 32 pages): a longer TF_CONFIG or
#: TPU_WORKER_HOSTNAMES makes exec fail with E2BIG, so the launcher refuses it with a clear line.
MAX_ENV_STRING = 32 * 4096

#: ``python``, ``python3``, ``python3.11``: the names by which a command asks for Python 3.
#: Not ``python2``: another language, which no interpreter of ours could stand in for.
_PYTHON = re.compile(r"^python(3(\.\d+)?)?$")

#: Module run (by exec) in front of every torchrun worker: it sets PR_SET_PDEATHSIG so that
#: workers die with torchrun, which itself dies with the launcher (see guard.py).
GUARD_MODULE = "tandem.launch.guard"
#: torchrun wrapped so that the exit code of the failing worker (or the signal) reaches us.
TORCHRUN_MODULE = "tandem.launch.torchrun"


@dataclass(frozen=True)
class Contract:
    """The validated TANDEM_* variables of one worker."""

    job: str
    namespace: str
    framework: str
    strategy: str
    workers: int
    worker_index: int
    procs_per_worker: int
    coordinator: str
    port: int
    worker_hosts: tuple[str, ...]
    metrics_address: str
    restart: int
    debug: bool = False


@dataclass(frozen=True)
class Launch:
    """What to exec: argv, the variables to add to the environment, and a one-line summary.

    `in_place`: replace the launcher (exec) instead of supervising a child, so the command
    keeps the launcher's terminal and process group (debugging with pdb needs both).
    """

    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    summary: str = ""
    in_place: bool = False
    #: A host name that must resolve before the command starts (the coordinator of a group).
    resolve_first: str = ""


def _get(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ContractError(name, "is missing or empty", _FIX)
    return value


def _int(env: Mapping[str, str], name: str, minimum: int, default: Optional[int] = None) -> int:
    if default is not None and not env.get(name, "").strip():
        return default
    text = _get(env, name)
    try:
        value = int(text)
    except ValueError:
        raise ContractError(name, f"must be an integer (got {text!r})", _FIX) from None
    if value < minimum:
        raise ContractError(name, f"must be >= {minimum} (got {value})", _FIX)
    return value


def split_host_port(address: str) -> tuple[str, int]:
    """``host:port`` -> (host, port); IPv6 hosts come bracketed (``[::1]:2222``)."""
    host, sep, port = address.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{address!r} is not host:port")
    return host, int(port)


def _hosts(env: Mapping[str, str], workers: int, job: str, namespace: str, port: int) -> tuple[str, ...]:
    """Every worker's host:port: the local executor's list where it sets one, else the pods' DNS
    names, derived here rather than listed in every pod (which would grow with the workers)."""
    name = ENV_WORKER_HOSTS
    if not env.get(name, "").strip():
        return tuple(f"{worker_host(job, namespace, i)}:{port}" for i in range(workers))
    hosts = tuple(h.strip() for h in _get(env, name).split(","))
    if len(hosts) != workers:
        raise ContractError(name, f"lists {len(hosts)} hosts but {ENV_WORKERS} is {workers}", _FIX)
    for host in hosts:
        try:
            split_host_port(host)
        except ValueError as error:
            raise ContractError(name, f"entry {error}", _FIX) from None
    return hosts


def read_contract(env: Mapping[str, str]) -> Contract:
    """Validate the TANDEM_* variables; raises ContractError naming the first bad one.

    Only what the framework needs is required: torch needs the coordinator and port, TensorFlow
    the port to derive every worker's host (or the local executor's host list). Variables that
    are set are always checked.
    """
    framework = _get(env, ENV_FRAMEWORK)
    if framework not in STRATEGIES:
        raise ContractError(ENV_FRAMEWORK, f"must be {' or '.join(FRAMEWORKS)} (got {framework!r})", _FIX)
    strategy = _get(env, ENV_STRATEGY)
    allowed = STRATEGIES[framework]
    if strategy not in allowed:
        raise ContractError(ENV_STRATEGY, f"must be {' or '.join(allowed)} for {framework} (got {strategy!r})", _FIX)
    workers = _int(env, ENV_WORKERS, 1)
    index = _int(env, ENV_WORKER_INDEX, 0)
    if index >= workers:
        raise ContractError(ENV_WORKER_INDEX, f"must be below {ENV_WORKERS}={workers} (got {index})", _FIX)
    procs = _int(env, ENV_PROCS_PER_WORKER, 1, default=1)
    if framework == "tensorflow" and procs != 1:
        raise ContractError(ENV_PROCS_PER_WORKER, f"must be 1 for tensorflow (got {procs})", _FIX)
    job = _get(env, ENV_JOB)
    namespace = env.get(ENV_NAMESPACE, "").strip() or "default"
    listed = bool(env.get(ENV_WORKER_HOSTS, "").strip())
    coordinator = env.get(ENV_COORDINATOR, "").strip()
    port = 0
    if framework == "pytorch" or env.get(ENV_PORT, "").strip():
        coordinator = _get(env, ENV_COORDINATOR)
    needs_hosts = framework == "tensorflow" or listed
    if framework == "pytorch" or env.get(ENV_PORT, "").strip() or (needs_hosts and not listed):
        port = _int(env, ENV_PORT, 1)
        if port > 65535:
            raise ContractError(ENV_PORT, f"must be a TCP port 1..65535 (got {port})", _FIX)
    hosts = _hosts(env, workers, job, namespace, port) if needs_hosts else ()
    return Contract(
        job=job,
        namespace=namespace,
        framework=framework,
        strategy=strategy,
        workers=workers,
        worker_index=index,
        procs_per_worker=procs,
        coordinator=coordinator,
        port=port,
        worker_hosts=hosts,
        metrics_address=env.get(ENV_METRICS_ADDRESS, "").strip(),
        restart=_int(env, ENV_RESTART, 0, default=0),
        debug=env.get(ENV_DEBUG, "").strip() == "1",
    )


def is_python(program: str) -> bool:
    """True for ``python``, ``python3``, ``python3.11`` or a path ending in one."""
    return bool(_PYTHON.match(os.path.basename(program)))


def with_interpreter(argv: Sequence[str], python: str) -> list[str]:
    """argv with a bare ``python`` (a name, no directory) replaced by the interpreter ``python``.

    A bare name would be looked up on PATH and could be another interpreter than the one that
    has the framework (and Tandem) installed; a path is the user's explicit choice and is kept.
    The launcher applies this to the user's command, the local executor to the pod's command.
    """
    if argv and is_python(argv[0]) and os.path.basename(argv[0]) == argv[0]:
        return [python, *argv[1:]]
    return list(argv)


def user_argv(command: Sequence[str], python: str) -> list[str]:
    """The user's command with a bare ``python`` replaced by the launcher's interpreter."""
    if not command:
        raise ContractError("command", "is empty", "pass it after --: python -m tandem.launch -- python train.py")
    return with_interpreter(command, python)


def torchrun_argv(contract: Contract, command: Sequence[str], python: str) -> list[str]:
    """torchrun with static rendezvous at the coordinator, wrapping every worker in the guard.

    ``--max-restarts=0``: Tandem restarts the whole group itself (backoffLimit), a second
    restart loop inside one worker would hide failures. The default (no ``--tee``/``--redirects``)
    keeps worker output plain, unprefixed, on the pod's stdout/stderr. Workers always run
    through ``--no-python`` so that the guard can be exec'd first; a Python command gets the
    launcher's interpreter, as torchrun itself would use.
    """
    return [
        python, "-m", TORCHRUN_MODULE,
        f"--nnodes={contract.workers}",
        f"--node-rank={contract.worker_index}",
        f"--nproc-per-node={contract.procs_per_worker}",
        "--rdzv-backend=static",
        f"--master-addr={contract.coordinator}",
        f"--master-port={contract.port}",
        "--max-restarts=0",
        "--no-python",
        python, "-m", GUARD_MODULE, "--",
        *user_argv(command, python),
    ]  # fmt: skip


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


def tf_config(contract: Contract) -> dict[str, Any]:
    """TF_CONFIG for MultiWorkerMirroredStrategy: every worker in index order, and this task."""
    return {
        "cluster": {"worker": list(contract.worker_hosts)},
        "task": {"type": "worker", "index": contract.worker_index},
    }


def tpu_env(contract: Contract) -> dict[str, str]:
    """TPU_WORKER_ID / TPU_WORKER_HOSTNAMES as GKE TPU slices expect them (hosts, no ports)."""
    hostnames = [split_host_port(h)[0] for h in contract.worker_hosts]
    return {"TPU_WORKER_ID": str(contract.worker_index), "TPU_WORKER_HOSTNAMES": ",".join(hostnames)}


def _display(argv: Sequence[str], python: str) -> str:
    """argv shortened for the start line: torchrun and the guard shown by name."""
    shown = list(argv)
    if shown[:3] == [python, "-m", TORCHRUN_MODULE]:
        shown[:3] = ["torchrun"]
        guard = [python, "-m", GUARD_MODULE, "--"]
        for i in range(len(shown)):
            if shown[i : i + 4] == guard:
                shown[i : i + 4] = ["--"]
                break
    return " ".join(shlex.quote("python" if a == python else a) for a in shown)


def build_launch(env: Mapping[str, str], command: Sequence[str], python: str) -> Launch:
    """Contract + user command -> what to exec. Raises ContractError on bad input.

    ``python`` is the interpreter to use (the launcher passes ``sys.executable``).
    """
    contract = read_contract(env)
    extra: dict[str, str] = {}
    if "PYTHONUNBUFFERED" not in env:
        extra["PYTHONUNBUFFERED"] = "1"  # log lines reach the pod log / console as they happen
    if contract.framework == "pytorch" and contract.debug:
        argv = user_argv(command, python)
        extra.update(torch_env(contract))
    elif contract.framework == "pytorch":
        argv = torchrun_argv(contract, command, python)
    elif contract.strategy == "multi-worker-mirrored":
        argv = user_argv(command, python)
        extra["TF_CONFIG"] = json.dumps(tf_config(contract), separators=(",", ":"))
    else:
        argv = user_argv(command, python)
        extra.update(tpu_env(contract))
    for name, value in extra.items():
        size = len(f"{name}={value}".encode()) + 1  # as exec counts it: NAME=value and a NUL
        if size > MAX_ENV_STRING:
            raise ContractError(
                ENV_WORKERS, f"is {contract.workers}: {name} would be {size} bytes, past Linux's limit of "
                f"{MAX_ENV_STRING} for one variable (exec fails with E2BIG)", "run fewer workers or shorter names",
            )
    restart = f" restart {contract.restart}" if contract.restart else ""
    summary = (
        f"worker {contract.worker_index}/{contract.workers} {contract.framework} {contract.strategy}"
        f"{restart} -> {_display(argv, python)}"
    )
    if contract.debug:
        summary += " (debug: in place, no torchrun agent)"
    resolve_first = contract.coordinator if contract.workers > 1 else ""
    return Launch(argv=tuple(argv), env=extra, summary=summary, in_place=contract.debug, resolve_first=resolve_first)
