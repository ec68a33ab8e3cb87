"""What a framework is to Tandem: the one interface every framework module fills in.

Everything that differs between PyTorch DDP, TensorFlow MultiWorkerMirrored and a TPU slice
sits in one `Framework` record: its strategies, the rules it puts on a spec (as data, so that
the model's check and the CRD's CEL rule are generated from the same words), how a worker is
launched, its image, its TensorBoard writer. The rest of Tandem asks the registry for the
record and never compares a framework's name.

Standard library only: `python -m tandem.launch` reads these records inside every worker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Union

from ..contract import worker_host

#: The repository and tag of Tandem's worker images (`tandem/<image>:<tag>`); the tag is the
#: chart's appVersion (tests/unit/test_chart.py holds them together).
IMAGE_REPOSITORY = "tandem"
IMAGE_TAG = "0.1.0"


@dataclass(frozen=True)
class Contract:
    """The validated TANDEM_* variables of one worker (launch.env reads them): what a
    strategy's launch builds the framework's own environment from."""

    job: str
    namespace: str
    framework: str
    strategy: str
    workers: int
    worker_index: int
    procs_per_worker: int
    #: Worker 0's host: set when the strategy needs it (or the port is set).
    coordinator: str
    port: int
    #: Every worker's host:port in index order: set when the strategy needs them.
    worker_hosts: tuple[str, ...]
    metrics_address: str
    restart: int
    debug: bool = False
    #: Restarts of the training processes in place before the launcher gives up (torchrun --max-restarts).
    in_place_restarts: int = 0
    #: An elastic job's fewest workers (contract.ENV_MIN_WORKERS); 0: fixed size, all `workers`.
    min_workers: int = 0
    #: Exit codes a FailJob rule names: never restarted in place (contract.ENV_FAIL_JOB_EXIT_CODES).
    fail_job_exit_codes: tuple[int, ...] = ()


#: Linux's limit on one environment string (MAX_ARG_STRLEN, 32 pages): a longer TF_CONFIG or
#: TPU_WORKER_HOSTNAMES makes exec fail with E2BIG.
MAX_ENV_STRING = 32 * 4096


def oversized_env(env: Mapping[str, str]) -> Optional[tuple[str, int]]:
    """The first variable exec would refuse (E2BIG), with its size as exec counts it
    (NAME=value and a NUL); None when all fit. The model refuses such a spec and the launcher
    such a contract, with the same arithmetic."""
    for name, value in env.items():
        size = len(f"{name}={value}".encode()) + 1
        if size > MAX_ENV_STRING:
            return name, size
    return None


def cluster_hosts(job: str, namespace: str, workers: int, port: int) -> tuple[str, ...]:
    """Every worker pod's host:port, derived rather than listed in each pod (a list would grow
    with the workers): what a strategy with `needs_hosts` gets on a cluster."""
    return tuple(f"{worker_host(job, namespace, i)}:{port}" for i in range(workers))


def split_host_port(address: str) -> tuple[str, int]:
    """``host:port`` -> (host, port); IPv6 hosts come bracketed (``[::1]:2222``)."""
    host, sep, port = address.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{address!r} is not host:port")
    return host, int(port)


@dataclass(frozen=True)
class WorkerLaunch:
    """What a strategy runs in one worker: argv, the variables it adds (each one the strategy
    declares in `sets_env`), and argv as the launcher's start line shows it (default: argv)."""

    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    shown: tuple[str, ...] = ()


#: A strategy's launch: (the worker's contract, the user's command with `python` already this
#: interpreter, this interpreter) -> what to run. Pure: no environment read, nothing started.
LaunchBuilder = Callable[[Contract, tuple[str, ...], str], WorkerLaunch]


# --- Rules: data, from which api/model.py writes the Python check and api/crd.py the CEL rule --


@dataclass(frozen=True)
class Fixed:
    """A spec field that must keep one value under this framework or strategy (its default, so
    leaving it unset is always right): procsPerWorker 1 for TensorFlow, no GPUs on a TPU slice."""

    #: The field's wire path under spec, dotted: "procsPerWorker", "resources.gpus".
    field: str
    value: int
    #: Why, in the words the model's error gives after the rule: "one TensorFlow process per
    #: worker uses all its devices".
    reason: str

    def broken_by(self, value: Any) -> bool:
        return value is not None and value != self.value


@dataclass(frozen=True)
class Requires:
    """A top-level spec field the strategy needs and no other strategy may set (a TPU slice
    means nothing to DDP)."""

    field: str
    #: A value to show in the error when the field is missing: "{accelerator: ..., topology: 2x4}".
    example: str


Rule = Union[Fixed, Requires]


# --- The interface ---------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Strategy:
    """One way a framework distributes training (spec.strategy, TANDEM_STRATEGY)."""

    name: str
    #: Builds the worker's launch from its contract.
    launch: LaunchBuilder
    #: Whether the launch needs worker 0's host and port (torch's rendezvous store) ...
    needs_coordinator: bool = False
    #: ... and every worker's host:port (TF_CONFIG, TPU_WORKER_HOSTNAMES).
    needs_hosts: bool = False
    #: The variables the launch sets, which a user's spec.env therefore may not: names, or
    #: prefixes written with a trailing '*' ("TPU_WORKER_*").
    sets_env: tuple[str, ...] = ()
    #: Rules that hold under this strategy only.
    rules: tuple[Rule, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Framework:
    """A training framework Tandem launches (spec.framework, TANDEM_FRAMEWORK)."""

    #: spec.framework; also names the worker pods (`app.kubernetes.io/name: <name>-worker`).
    name: str
    #: Its strategies; the first is its usual one, which `Client.train(framework=...)` ships a
    #: function with.
    strategies: tuple[Strategy, ...]
    #: Tandem's worker image for it: built from images/<image>.Dockerfile, the spec's default
    #: image as tandem/<image>:<IMAGE_TAG>.
    image: str
    #: The pyproject extra that installs the framework, which its Dockerfile installs.
    extra: str
    #: The class that writes its TensorBoard event files, as "module:Class" (imported only in a
    #: worker that writes them): Class(directory) with scalar(tag, value, step) and flush().
    tensorboard_writer: str
    #: Rules that hold under every strategy of the framework.
    rules: tuple[Rule, ...] = ()

    @property
    def default_strategy(self) -> Strategy:
        return self.strategies[0]

    @property
    def strategy_names(self) -> tuple[str, ...]:
        return tuple(strategy.name for strategy in self.strategies)

    def strategy(self, name: str) -> Optional[Strategy]:
        return next((strategy for strategy in self.strategies if strategy.name == name), None)

    @property
    def default_image(self) -> str:
        return f"{IMAGE_REPOSITORY}/{self.image}:{IMAGE_TAG}"
