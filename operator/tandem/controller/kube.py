"""The operator's writes to the Kubernetes API, through the official client.

Children are server-side applied with Tandem's field manager, so re-applying the same object
is a no-op and never a duplicate; status goes through the status subresource.

Every call through the operator's ApiClient ends within API_TIMEOUT_SECONDS (timing.py): the
generated client sends none by default, and a call to a paused apiserver would hang a worker, or
the Lease renewal, for ever. urllib3's own retries are off: each retry would get the whole timeout
again, and the work queue and the renewal loop already retry with their own pacing.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any, Mapping, Optional, Union, cast

from kubernetes import client
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient

from ..contract import API_GROUP, API_VERSION, FIELD_MANAGER, KIND, PLURAL, VERSION
from ..errors import NotFound
from ..kubeapi import connect, error_type
from .reconcile import Event, rfc3339
from .timing import API_TIMEOUT_SECONDS

Timeout = Union[float, tuple[float, float]]


class BoundedApiClient(client.ApiClient):
    """An ApiClient whose calls time out after API_TIMEOUT_SECONDS unless the caller gives its own
    `_request_timeout` (the Lease renewal gives what is left of its deadline)."""

    def call_api(self, method: str, url: str, header_params: Any = None, body: Any = None,
                 post_params: Any = None, _request_timeout: Optional[Timeout] = None) -> Any:
        return super().call_api(method, url, header_params, body, post_params,
                                _request_timeout=_request_timeout or API_TIMEOUT_SECONDS)


def load_config(kubeconfig: Optional[str] = None) -> client.ApiClient:
    """In a pod: the service account; elsewhere: the kubeconfig (KUBECONFIG or ~/.kube/config)."""
    configuration = connect(kubeconfig).api.configuration
    configuration.retries = False  # see the module's docstring
    return BoundedApiClient(configuration)


class KubeWriter:
    def __init__(self, api: client.ApiClient):
        self.api = api
        self.dynamic = DynamicClient(api)
        self.core = client.CoreV1Api(api)
        self.batch = client.BatchV1Api(api)
        self.custom = client.CustomObjectsApi(api)

    def apply(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        resource = self.dynamic.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
        result = resource.server_side_apply(
            body=dict(obj), namespace=obj["metadata"]["namespace"], field_manager=FIELD_MANAGER, force_conflicts=True
        )
        applied: dict[str, Any] = result.to_dict()
        return applied

    def delete_job(self, namespace: str, name: str) -> None:
        """Foreground: the Job object stays until its pods are gone, so a new group never
        meets the old one under the same pod hostnames."""
        try:
            self.batch.delete_namespaced_job(name, namespace, propagation_policy="Foreground")
        except ApiException as error:
            if error_type(error.status) is not NotFound:
                raise

    def delete_training_job(self, namespace: str, name: str) -> None:
        try:
            self.custom.delete_namespaced_custom_object(API_GROUP, VERSION, namespace, PLURAL, name,
                                                        propagation_policy="Background")
        except ApiException as error:
            if error_type(error.status) is not NotFound:
                raise

    def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> Optional[dict[str, Any]]:
        try:
            # The object as patched; the client types custom objects as `object`.
            return cast(dict[str, Any], self.custom.patch_namespaced_custom_object_status(
                API_GROUP, VERSION, namespace, PLURAL, name, {"status": dict(status)}
            ))
        except ApiException as error:
            if error_type(error.status) is NotFound:
                return None
            raise

    def post_event(self, owner: Mapping[str, Any], event: Event) -> None:
        meta = owner["metadata"]
        now = datetime.now(timezone.utc)
        body = client.CoreV1Event(
            # Named as client-go names events: <object>.<unix nanoseconds in hex>, so names sort by time.
            metadata=client.V1ObjectMeta(name=f"{meta['name']}.{time.time_ns():x}", namespace=meta["namespace"]),
            involved_object=client.V1ObjectReference(
                api_version=API_VERSION, kind=KIND, name=meta["name"],
                namespace=meta["namespace"], uid=meta.get("uid"),
            ),
            reason=event.reason, message=event.message[:1024], type=event.type,
            source=client.V1EventSource(component=FIELD_MANAGER),
            first_timestamp=now, last_timestamp=now, count=1,
            reporting_component=FIELD_MANAGER, reporting_instance=FIELD_MANAGER,
        )
        try:
            self.core.create_namespaced_event(meta["namespace"], body)
        except ApiException:
            pass  # events are best effort; a lost event must never stop a reconcile

    def now(self) -> str:
        return rfc3339(datetime.now(timezone.utc))
