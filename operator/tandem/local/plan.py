"""What each local worker process runs: the rendered pod's command and env, on loopback.

Pure: given the rendered Indexed Job and the ports chosen, returns argv and env per worker.
The local executor runs exactly the container command and env a cluster pod gets; only the
addresses change (pod DNS names -> 127.0.0.1, one free port per worker for TensorFlow, listed in
TANDEM_WORKER_HOSTS, which only local workers get: a pod's launcher derives the hosts), the
Downward-API index is resolved, and `python` means this interpreter.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from ..contract import COMPLETION_INDEX, ENV_COORDINATOR, ENV_PORT, ENV_WORKER_HOSTS
from ..launch.env import with_interpreter

LOOPBACK = "127.0.0.1"
_INDEX_FIELD = re.compile(r"^metadata\.(annotations|labels)\['" + re.escape(COMPLETION_INDEX) + r"'\]$")


@dataclass(frozen=True)
class WorkerPlan:
    index: int
    argv: list[str]
    env: dict[str, str]


def container_of(job_object: Mapping[str, Any]) -> Mapping[str, Any]:
    container: Mapping[str, Any] = job_object["spec"]["template"]["spec"]["containers"][0]
    return container


def resolve_env(entries: list[Mapping[str, Any]], index: int) -> dict[str, str]:
    """Plain values, and the Downward-API completion index as the kubelet would fill it."""
    env: dict[str, str] = {}
    for entry in entries:
        if "value" in entry:
            env[entry["name"]] = str(entry["value"])
            continue
        field = entry.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath", "")
        if not _INDEX_FIELD.match(field):
            raise ValueError(f"env {entry['name']}: only the completion index can be resolved locally, not {field!r}")
        env[entry["name"]] = str(index)
    return env


def local_argv(argv: list[str], python: str = sys.executable) -> list[str]:
    """`python` (as images name it) becomes this interpreter, so workers share its packages."""
    return with_interpreter(argv, python)


def plan_workers(
    job_object: Mapping[str, Any],
    ports: list[int],
    extra_env: Mapping[str, str] | None = None,
    python: str = sys.executable,
    worker_env: Sequence[Mapping[str, str]] | None = None,
) -> list[WorkerPlan]:
    """One plan per completion index; `ports[i]` is worker i's port, `ports[0]` the coordinator's;
    `worker_env[i]`: what worker i alone gets (its GPUs, local.gpus). An elastic job may list more
    ports than it starts workers: one per worker of its range (TANDEM_WORKERS is maxWorkers)."""
    workers = int(job_object["spec"]["completions"])
    if len(ports) < workers:
        raise ValueError(f"need {workers} ports, got {len(ports)}")
    if worker_env is not None and len(worker_env) != workers:
        raise ValueError(f"need {workers} per-worker envs, got {len(worker_env)}")
    container = container_of(job_object)
    argv = local_argv([*container.get("command", []), *container.get("args", [])], python)
    plans = []
    for index in range(workers):
        env = resolve_env(container.get("env", []), index)
        env.update({
            ENV_COORDINATOR: LOOPBACK,
            ENV_PORT: str(ports[0]),
            ENV_WORKER_HOSTS: ",".join(f"{LOOPBACK}:{p}" for p in ports),
            **(extra_env or {}),
            **(worker_env[index] if worker_env is not None else {}),
        })
        plans.append(WorkerPlan(index=index, argv=argv, env=env))
    return plans
