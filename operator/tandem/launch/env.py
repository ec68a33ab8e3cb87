"""Pure translation of Tandem's worker env contract into the framework's own launch.

Every rendered pod (and every local worker process) gets the same ``TANDEM_*`` variables;
this module reads and checks them, and the strategy's launch (tandem.frameworks: torchrun
flags, ``TF_CONFIG``, ``TPU_WORKER_*``) turns them, plus the user's command, into the argv to
run and the extra environment the framework expects.
Nothing here reads the process environment, spawns or prints: callers pass a mapping in and
get values out, so every rule is unit-testable in milliseconds.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence

from .. import frameworks
from ..contract import (
    ENV_COORDINATOR,
    ENV_DEBUG,
    ENV_FAIL_JOB_EXIT_CODES,
    ENV_FRAMEWORK,
    ENV_IN_PLACE_RESTARTS,
    ENV_JOB,
    ENV_METRICS_ADDRESS,
    ENV_MIN_WORKERS,
    ENV_NAMESPACE,
    ENV_PORT,
    ENV_PROCS_PER_WORKER,
    ENV_RESTART,
    ENV_STRATEGY,
    ENV_WORKER_HOSTS,
    ENV_WORKER_INDEX,
    ENV_WORKERS,
)
from ..errors import ContractError
from ..frameworks.base import MAX_ENV_STRING, Contract, cluster_hosts, oversized_env, split_host_port
from ..frameworks.rules import check

__all__ = ["Contract", "ContractError", "Launch", "build_launch", "read_contract", "split_host_port"]

#: What the renderer / local executor set; the fix named in every error points there.
_FIX = "it is set by Tandem's renderer or local executor (tandem run)"

#: ``python``, ``python3``, ``python3.11``: the names by which a command asks for Python 3.
#: Not ``python2``: another language, which no interpreter of ours could stand in for.
_PYTHON = re.compile(r"^python(3(\.\d+)?)?$")


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


def _hosts(env: Mapping[str, str], workers: int, job: str, namespace: str, port: int) -> tuple[str, ...]:
    """Every worker's host:port: the local executor's list where it sets one, else the pods' DNS
    names, derived here rather than listed in every pod (which would grow with the workers)."""
    name = ENV_WORKER_HOSTS
    if not env.get(name, "").strip():
        return cluster_hosts(job, namespace, workers, port)
    hosts = tuple(h.strip() for h in _get(env, name).split(","))
    if len(hosts) != workers:
        raise ContractError(name, f"lists {len(hosts)} hosts but {ENV_WORKERS} is {workers}", _FIX)
    for host in hosts:
        try:
            split_host_port(host)
        except ValueError as error:
            raise ContractError(name, f"entry {error}", _FIX) from None
    return hosts


def _codes(env: Mapping[str, str], name: str) -> tuple[int, ...]:
    """A comma-separated list of exit codes (0..255); empty when unset."""
    text = env.get(name, "").strip()
    if not text:
        return ()
    try:
        codes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ContractError(name, f"must be comma-separated integers (got {text!r})", _FIX) from None
    if any(not 0 <= code <= 255 for code in codes):
        raise ContractError(name, f"must hold exit codes 0..255 (got {text!r})", _FIX)
    return codes


def read_contract(env: Mapping[str, str]) -> Contract:
    """Validate the TANDEM_* variables; raises ContractError naming the first bad one.

    Only what the strategy needs is required (Strategy.needs_coordinator, needs_hosts): torch's
    rendezvous the coordinator and port, TF_CONFIG the port to derive every worker's host (or the
    local executor's host list). Variables that are set are always checked.
    """
    framework = frameworks.find(_get(env, ENV_FRAMEWORK))
    if framework is None:
        raise ContractError(ENV_FRAMEWORK, f"must be {' or '.join(frameworks.names())} "
                            f"(got {env.get(ENV_FRAMEWORK, '').strip()!r})", _FIX)
    strategy = framework.strategy(_get(env, ENV_STRATEGY))
    if strategy is None:
        raise ContractError(ENV_STRATEGY, f"must be {' or '.join(framework.strategy_names)} for {framework.name} "
                            f"(got {env.get(ENV_STRATEGY, '').strip()!r})", _FIX)
    workers = _int(env, ENV_WORKERS, 1)
    index = _int(env, ENV_WORKER_INDEX, 0)
    if index >= workers:
        raise ContractError(ENV_WORKER_INDEX, f"must be below {ENV_WORKERS}={workers} (got {index})", _FIX)
    procs = _int(env, ENV_PROCS_PER_WORKER, 1, default=1)
    broken = check(framework.name, strategy.name, "procsPerWorker", procs)
    if broken:
        raise ContractError(ENV_PROCS_PER_WORKER, f"{broken} (got {procs})", _FIX)
    job = _get(env, ENV_JOB)
    namespace = env.get(ENV_NAMESPACE, "").strip() or "default"
    listed = bool(env.get(ENV_WORKER_HOSTS, "").strip())
    port_set = bool(env.get(ENV_PORT, "").strip())
    needs_hosts = strategy.needs_hosts or listed
    coordinator = env.get(ENV_COORDINATOR, "").strip()
    port = 0
    if strategy.needs_coordinator or port_set:
        coordinator = _get(env, ENV_COORDINATOR)
    if strategy.needs_coordinator or port_set or (needs_hosts and not listed):
        port = _int(env, ENV_PORT, 1)
        if port > 65535:
            raise ContractError(ENV_PORT, f"must be a TCP port 1..65535 (got {port})", _FIX)
    hosts = _hosts(env, workers, job, namespace, port) if needs_hosts else ()
    return Contract(
        job=job,
        namespace=namespace,
        framework=framework.name,
        strategy=strategy.name,
        workers=workers,
        worker_index=index,
        procs_per_worker=procs,
        coordinator=coordinator,
        port=port,
        worker_hosts=hosts,
        metrics_address=env.get(ENV_METRICS_ADDRESS, "").strip(),
        restart=_int(env, ENV_RESTART, 0, default=0),
        debug=env.get(ENV_DEBUG, "").strip() == "1",
        in_place_restarts=_int(env, ENV_IN_PLACE_RESTARTS, 0, default=0),
        min_workers=_min_workers(env, workers),
        fail_job_exit_codes=_codes(env, ENV_FAIL_JOB_EXIT_CODES),
    )


def _min_workers(env: Mapping[str, str], workers: int) -> int:
    """An elastic job's fewest workers, at most TANDEM_WORKERS; 0 when unset (fixed size)."""
    low = _int(env, ENV_MIN_WORKERS, 0, default=0)
    if low > workers:
        raise ContractError(ENV_MIN_WORKERS, f"must be at most {ENV_WORKERS}={workers} (got {low})", _FIX)
    return low


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


def _display(argv: Sequence[str], python: str) -> str:
    return " ".join(shlex.quote("python" if a == python else a) for a in argv)


def build_launch(env: Mapping[str, str], command: Sequence[str], python: str) -> Launch:
    """Contract + user command -> what to exec. Raises ContractError on bad input.

    ``python`` is the interpreter to use (the launcher passes ``sys.executable``).
    """
    contract = read_contract(env)
    extra: dict[str, str] = {}
    if "PYTHONUNBUFFERED" not in env:
        extra["PYTHONUNBUFFERED"] = "1"  # log lines reach the pod log / console as they happen
    strategy = frameworks.get(contract.framework).strategy(contract.strategy)
    assert strategy is not None  # read_contract checked it
    worker = strategy.launch(contract, tuple(user_argv(command, python)), python)
    extra.update(worker.env)
    oversized = oversized_env(extra)
    if oversized is not None:  # exec would fail with E2BIG: refuse it with a clear line instead
        name, size = oversized
        raise ContractError(
            ENV_WORKERS, f"is {contract.workers}: {name} would be {size} bytes, past Linux's limit of "
            f"{MAX_ENV_STRING} for one variable (exec fails with E2BIG)", "run fewer workers or shorter names",
        )
    restart = f" restart {contract.restart}" if contract.restart else ""
    summary = (
        f"worker {contract.worker_index}/{contract.workers} {contract.framework} {contract.strategy}"
        f"{restart} -> {_display(worker.shown or worker.argv, python)}"
    )
    if contract.debug:
        summary += " (debug: in place)"
    resolve_first = contract.coordinator if contract.workers > 1 else ""
    return Launch(argv=worker.argv, env=extra, summary=summary, in_place=contract.debug, resolve_first=resolve_first)
