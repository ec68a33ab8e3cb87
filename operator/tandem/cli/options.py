"""Options several commands share, and `--on`: which backend a command talks to."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

import click

if TYPE_CHECKING:
    from ..backends.base import Backend
    from ..kube.client import Client

TARGETS = ("local", "kubernetes")


def on_option(help: Optional[str] = None) -> Callable[[Any], Any]:
    return click.option("--on", "target", type=click.Choice(TARGETS), default="local", show_default=True, help=help)


def namespace_option(help: str = "Namespace (default: the kubeconfig context's).") -> Callable[[Any], Any]:
    return click.option("-n", "--namespace", help=help)


def kubeconfig_option(help: str = "Kubeconfig file (default: KUBECONFIG or ~/.kube/config).") -> Callable[[Any], Any]:
    return click.option("--kubeconfig", type=click.Path(dir_okay=False), envvar="KUBECONFIG", help=help)


def runs_dir_option(help: Optional[str] = None) -> Callable[[Any], Any]:
    return click.option("--runs-dir", type=click.Path(file_okay=False), default=".tandem/runs", show_default=True,
                        help=help)


def kube_client(kubeconfig: Optional[str], namespace: Optional[str]) -> Client:
    """The SDK's client; KUBECONFIG may list several files, of which the first is used."""
    from ..kube.client import Client

    return Client(kubeconfig=kubeconfig.split(":")[0] if kubeconfig else None, namespace=namespace)


def backend(target: str, *, namespace: Optional[str] = None, kubeconfig: Optional[str] = None,
            runs_dir: str = ".tandem/runs", **local: Any) -> Backend:
    """The backend `--on` names; `local` holds LocalBackend's options (resume, debug, tensorboard)."""
    if target == "kubernetes":
        from ..kube.backend import KubernetesBackend

        return KubernetesBackend(kube_client(kubeconfig, namespace))
    from ..local.backend import LocalBackend

    return LocalBackend(Path(runs_dir), **local)
