"""`tandem operator run`: wires the config, the lease, telemetry, the watches and kopf together."""

from __future__ import annotations

import logging
import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import kopf

from .._sys.malloc import limit_arenas
from ..api.admin_policy import AdminPolicy
from ..figures.token import load_key
from . import telemetry
from .actions import MetricsChannel
from .apiclient import AsyncApi, SyncApi, endpoint
from .health import Health
from .leader import LeaderElector
from .runtime import Controller, OperatorConfig, register
from .timing import IMAGE_PULL_GRACE_SECONDS, QUEUE_STALL_SECONDS
from .watching import assert_watches_nothing, operator_settings
from .writer import KubeWriter

log = logging.getLogger("tandem.operator")
#: glibc malloc arenas for the operator process: the event loop's and one for its threads.
MALLOC_ARENAS = 2


@dataclass
class RunOptions:
    namespaces: tuple[str, ...] = ()
    kubeconfig: Optional[str] = None
    metrics_address: str = ""
    metrics_key_file: str = ""
    health_port: int = 8080
    metrics_port: int = 9090
    leader_election: bool = True
    lease_namespace: str = ""
    queue_stall_seconds: float = QUEUE_STALL_SECONDS
    admin_policy_dir: Optional[str] = None
    image_pull_grace_seconds: float = IMAGE_PULL_GRACE_SECONDS


def read_admin_policy(directory: Optional[str]) -> AdminPolicy:
    """The settings from a mounted ConfigMap (one file per key; its `..data` links skipped), or
    the safe defaults. Read once: the chart rolls the pod when the policy changes."""
    if directory is None:
        return AdminPolicy()
    data = {path.name: path.read_text().strip() for path in sorted(Path(directory).iterdir())
            if not path.name.startswith(".") and path.is_file()}
    return AdminPolicy.from_data(data)


def _lease_namespace(options: RunOptions) -> str:
    if options.lease_namespace:
        return options.lease_namespace
    try:
        with open("/var/run/secrets/kubernetes.io/serviceaccount/namespace") as f:
            return f.read().strip()
    except OSError:
        return os.environ.get("POD_NAMESPACE") or (options.namespaces[0] if options.namespaces else "default")


def _stop_on_signals(stop: threading.Event) -> None:
    """SIGTERM (a rollout, a drain) or Ctrl-C before kopf has installed its own handlers sets the
    stop flag instead of killing the process: the lease wait returns, kopf starts already stopped,
    and the Lease is released on the way out. Without this, a signal in the seconds of start-up
    ended the process at once, holding the Lease until it expired."""
    def handler(signum: int, _frame: object) -> None:
        log.info("%s before start-up finished: stopping", signal.Signals(signum).name)
        stop.set()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, handler)


def run(options: RunOptions) -> int:
    limit_arenas(MALLOC_ARENAS)  # before any thread starts (see _sys/malloc.py)
    # Before anything else: a SIGTERM after the first log line (the admin policy) but before
    # this killed the process while it loaded its credentials.
    stop, lost = threading.Event(), threading.Event()
    _stop_on_signals(stop)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)  # one line per watch event is noise
    if options.kubeconfig:
        os.environ["KUBECONFIG"] = options.kubeconfig
    admin_policy = read_admin_policy(options.admin_policy_dir)  # a bad policy stops the start, before the lease
    log.info("admin policy: %s", admin_policy)
    server = endpoint(options.kubeconfig)
    if options.metrics_port:
        telemetry.serve(options.metrics_port)
    health = Health(options.queue_stall_seconds)
    if options.health_port:
        health.serve(options.health_port)
    controller: Optional[Controller] = None

    def on_lost() -> None:
        if controller is not None:  # made just below; read when the lease is lost
            controller.halt()  # at once: kopf's stop, below, takes seconds
        lost.set()
        stop.set()

    elector = None
    if options.leader_election:
        elector = LeaderElector(SyncApi(server), _lease_namespace(options))
        health.role = "waiting for the lease"
        if not elector.acquire(stop):
            return 0
        elector.keep_renewing(stop, on_lost)
    health.role = "leading"
    registry = kopf.OperatorRegistry()
    metrics = MetricsChannel(options.metrics_address,
                             load_key(options.metrics_key_file) if options.metrics_key_file else b"")
    config = OperatorConfig(metrics=metrics, admin_policy=admin_policy,
                            image_pull_grace_seconds=options.image_pull_grace_seconds, namespaces=options.namespaces)
    controller = Controller(KubeWriter(AsyncApi(server)), config, health,
                            watch_api=AsyncApi(server, connections=0))  # each watch holds its connection
    register(registry, controller)

    @kopf.on.cleanup(registry=registry)
    def _free_stop_flag_waiter(**_: object) -> None:
        # kopf waits for a threading.Event stop flag in an executor thread. Stopped by a signal
        # (SIGTERM from Kubernetes, Ctrl-C) rather than by the flag, it would join that thread
        # forever at exit: the process never ended and the Lease was never released.
        stop.set()

    @kopf.on.login(registry=registry)
    def _login(**kwargs: Any) -> Optional[kopf.ConnectionInfo]:
        # The same credentials as our own client: kubeconfig or service account.
        return kopf.login_via_client(**kwargs)

    assert_watches_nothing(registry)
    try:
        kopf.run(
            registry=registry,
            settings=operator_settings(namespaced=bool(options.namespaces)),
            standalone=True,  # one active replica is the Lease's job, not kopf peering's
            clusterwide=not options.namespaces,
            namespaces=list(options.namespaces),
            stop_flag=stop,
        )
    finally:
        if elector is not None:
            if not stop.is_set():
                stop.set()
            elector.release()
    return 1 if lost.is_set() else 0
