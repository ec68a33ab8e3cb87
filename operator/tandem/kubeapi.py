"""The one seam between Tandem and the Kubernetes API client: connecting, and what its errors mean.

Everything that talks to a cluster (the SDK's Client, the CLI through it, the operator) gets its
ApiClient from `connect()` and reads an ApiException through `error_type()` / `api_error()`, so
that kubeconfig loading and the HTTP status -> TandemError mapping are written once. Callers
catch Tandem's typed errors (NotFound, Conflict, ...) instead of comparing status codes.

It sits below both of its users, the SDK (`tandem.kube`) and the operator (`tandem.controller`),
which are independent of each other: neither may reach into the other's package for it.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Optional

from kubernetes import client as k8s, config as k8s_config
from kubernetes.client.rest import ApiException
from urllib3.exceptions import HTTPError

from .errors import Conflict, Forbidden, Invalid, NotFound, TandemError, Unreachable

#: What the API server answers when the resource type itself (here: the CRD) is unknown.
_NO_SUCH_RESOURCE = "the server could not find the requested resource"


@dataclass(frozen=True)
class Connection:
    """An ApiClient and the namespace its context names (in a pod: "default")."""

    api: k8s.ApiClient
    namespace: str

    @property
    def host(self) -> str:
        return str(self.api.configuration.host)


def connect(kubeconfig: Optional[str] = None, context: Optional[str] = None) -> Connection:
    """In a pod: its service account; elsewhere: the kubeconfig (`kubeconfig`, KUBECONFIG or
    ~/.kube/config), its current context unless `context` is given. Raises Unreachable with what
    to do when there is neither."""
    try:
        try:
            k8s_config.load_incluster_config()
            return Connection(k8s.ApiClient(), "default")
        except k8s_config.ConfigException:
            api = k8s_config.new_client_from_config(config_file=kubeconfig, context=context)
            _, active = k8s_config.list_kube_config_contexts(config_file=kubeconfig)
            return Connection(api, (active or {}).get("context", {}).get("namespace") or "default")
    except (k8s_config.ConfigException, OSError, TypeError) as error:
        raise Unreachable(f"no usable kubeconfig ({error}); set KUBECONFIG or pass kubeconfig=") from None


def error_type(status: Optional[int]) -> type[TandemError]:
    """The Tandem error an HTTP status of the API server stands for."""
    if status == 404:
        return NotFound
    if status == 409:
        return Conflict
    if status in (400, 422):
        return Invalid
    if status in (401, 403):
        return Forbidden
    if status in (0, 429, 502, 503, 504):
        return Unreachable
    return TandemError


def status_body(text: Optional[str]) -> dict[str, Any]:
    """The API server's Status object in a refusal's body; empty when the body is not one (a
    proxy's HTML page, nothing at all), so that callers fall back to the HTTP reason."""
    try:
        body = json.loads(text or "{}")
    except (TypeError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


def _message_and_reason(error: ApiException) -> tuple[str, str]:
    """The Status object's message and reason (e.g. "AlreadyExists"), falling back to HTTP's."""
    body = status_body(error.body)
    return str(body.get("message") or error.reason or ""), str(body.get("reason") or "")


def api_error(error: ApiException, what: str) -> TandemError:
    """`error` as the typed error, with a message that names `what` and what to do about it."""
    message, reason = _message_and_reason(error)
    kind = error_type(error.status)
    if kind is NotFound:
        if _NO_SUCH_RESOURCE in message:
            return NotFound("the TrainingJob CRD is not installed in this cluster: `kubectl apply -f manifests/crd.yaml` "
                            "or `helm install tandem charts/tandem`")
        return NotFound(f"{what} not found")
    if kind is Conflict:
        if reason == "AlreadyExists":
            return Conflict(f"{what} already exists: delete it first (`tandem delete`) or choose another name")
        return Conflict(f"{what} changed meanwhile: {message}")
    if kind is Invalid:
        return Invalid(f"{what} was refused by the cluster: {message}")
    if kind is Forbidden:
        return Forbidden(f"not allowed ({error.status}) for {what}: {message}")
    return kind(f"{what}: {error.status} {message}")


@contextmanager
def translated(what: str, host: str = "the cluster") -> Iterator[None]:
    """API and transport errors inside the block come out as Tandem's typed errors."""
    try:
        yield
    except ApiException as error:
        raise api_error(error, what) from None
    except (HTTPError, OSError) as error:
        raise Unreachable(f"cannot reach {host}: {error}") from None
