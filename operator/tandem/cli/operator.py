"""`tandem operator run`: the Kubernetes operator that reconciles TrainingJobs."""

from __future__ import annotations

import sys
from typing import Optional

import click

from ..contract import ENV_METRICS_ADDRESS, ENV_METRICS_KEY_FILE
from ..controller.timing import IMAGE_PULL_GRACE_SECONDS, QUEUE_STALL_SECONDS
from .boundary import TandemCommand, TandemGroup


@click.group(cls=TandemGroup)
def operator() -> None:
    """The Kubernetes operator that reconciles TrainingJobs."""


@operator.command("run", cls=TandemCommand)
@click.option("-n", "--namespace", "namespaces", multiple=True, help="Watch only these namespaces (default: all).")
@click.option("--kubeconfig", type=click.Path(dir_okay=False), help="Out of cluster: this kubeconfig (default: KUBECONFIG).")
@click.option("--metrics-address", default="", envvar=ENV_METRICS_ADDRESS,
              help="URL of the figures gateway, e.g. http://tandem-ray-head.tandem-system:8070.")
@click.option("--metrics-key-file", default="", envvar=ENV_METRICS_KEY_FILE, type=click.Path(dir_okay=False),
              help="File holding the gateway key: the jobs' write tokens and the operator's reader token derive from it.")
@click.option("--health-port", type=int, default=8080, show_default=True, help="Serves /healthz; 0 disables.")
@click.option("--metrics-port", type=int, default=9090, show_default=True, help="Serves Prometheus /metrics; 0 disables.")
@click.option("--leader-election/--no-leader-election", default=True, show_default=True,
              help="Hold a Lease so that only one replica acts.")
@click.option("--lease-namespace", default="", help="Namespace of the Lease (default: the pod's namespace).")
@click.option("--queue-stall-seconds", type=click.FloatRange(min=1), default=QUEUE_STALL_SECONDS, show_default=True,
              help="/healthz fails when work has waited this long with no reconcile finishing.")
@click.option("--admin-policy", "admin_policy", type=click.Path(exists=True, file_okay=False), default=None,
              help="Directory of the admin policy's settings, one file each (the chart mounts its ConfigMap there). "
                   "Default: the safe defaults.")
@click.option("--image-pull-grace-seconds", type=click.FloatRange(min=1), default=IMAGE_PULL_GRACE_SECONDS,
              show_default=True,
              help="A worker's image pull that keeps failing (ErrImagePull, ImagePullBackOff) fails its job after "
                   "this long; until then the job is Pending, in case the registry recovers.")
def operator_run(namespaces: tuple[str, ...], kubeconfig: Optional[str], metrics_address: str, metrics_key_file: str,
                 health_port: int, metrics_port: int, leader_election: bool, lease_namespace: str,
                 queue_stall_seconds: float, admin_policy: Optional[str], image_pull_grace_seconds: float) -> None:
    """Run the operator in the cluster (service account) or from here (kubeconfig)."""
    from ..controller.main import RunOptions, run as run_operator

    sys.exit(run_operator(RunOptions(namespaces, kubeconfig, metrics_address, metrics_key_file, health_port, metrics_port,
                                     leader_election, lease_namespace, queue_stall_seconds, admin_policy,
                                     image_pull_grace_seconds)))
