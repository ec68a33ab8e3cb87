"""The operator's writes to the Kubernetes API, through the official client.

Children are server-side applied with Tandem's field manager, so re-applying the same object
is a no-op and never a duplicate; status goes through the status subresource.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any, Mapping, Optional, cast

from kubernetes import client
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient

from ..contract import API_GROUP, API_VERSION, FIELD_MANAGER, KIND, PLURAL, VERSION
from ..errors import NotFound
from ..kubeapi import connect, error_type
from .reconcile import Event, rfc3339


def load_config(kubeconfig: Optional[str] = None) -> client.ApiClient:
    """In a pod: the service account; elsewhere: the kubeconfig (KUBECONFIG or ~/.kube/config)."""
    return connect(kubeconfig).api


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

    def create_once(self, obj: Mapping[str, Any]) -> None:
        """Create `obj` unless it exists. For the job's token Secret, whose name carries the
        TrainingJob's uid (contract.metrics_token_secret): one that exists was created by an earlier
        pass for this very job. The operator may create Secrets, never read, list or patch them."""
        try:
            self.core.create_namespaced_secret(obj["metadata"]["namespace"], dict(obj))  # type: ignore[arg-type]
        except ApiException as error:
            if error.status != 409:
                raise

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
