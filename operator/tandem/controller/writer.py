"""The operator's writes to the Kubernetes API, through the official client.

Children are created (POST) with Tandem's field manager, never applied with force: a name
already taken is the job's own only if the object carries the job's uid as its controller, and
an object of someone else's is left as it is and reported. Status goes through the status
subresource.

Every call through the operator's ApiClient ends within API_TIMEOUT_SECONDS (timing.py): the
generated client sends none by default, and a call to a paused apiserver would hang a worker, or
the Lease renewal, for ever. urllib3's own retries are off: each retry would get the whole timeout
again, and the work queue and the renewal loop already retry with their own pacing.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping, Optional, Union, cast

from kubernetes import client
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient

from ..contract import (
    API_GROUP,
    API_VERSION,
    FIELD_MANAGER,
    JOB_NAME_LABEL,
    KIND,
    KUEUE_GROUP,
    KUEUE_JOB_UID_LABEL,
    KUEUE_VERSION,
    KUEUE_WORKLOADS,
    MAX_WORKERS,
    OPERATOR_USER_AGENT,
    PLURAL,
    VERSION,
)
from ..errors import NotFound
from ..kubeapi import connect, error_type
from .observed import ALREADY_EXISTS, conflict_with, controller_of, owned_by
from .reconcile import Event, rfc3339
from .timing import API_TIMEOUT_SECONDS
from .workload import WorkloadState, workload_state

Timeout = Union[float, tuple[float, float]]


class BoundedApiClient(client.ApiClient):
    """An ApiClient whose calls time out after API_TIMEOUT_SECONDS unless the caller gives its own
    `_request_timeout` (the Lease renewal gives what is left of its deadline)."""

    def call_api(self, method: str, url: str, header_params: Any = None, body: Any = None,
                 post_params: Any = None, _request_timeout: Optional[Timeout] = None) -> Any:
        return super().call_api(method, url, header_params, body, post_params,
                                _request_timeout=_request_timeout or API_TIMEOUT_SECONDS)

log = logging.getLogger("tandem.operator")

#: HTTP statuses of a create the API server refused for what the object is or where it goes
#: (400 bad request, 403 Pod Security / quota / a namespace being deleted, 422 invalid): the
#: same request would be refused again, so it is reported and retried with backoff. Other
#: errors (5xx, 429, a lost connection) raise and take the runtime's ordinary retry.
REFUSING_STATUSES = (400, 403, 422)
#: Connections the operator's client keeps open: at least runtime.API_THREADS plus the Lease's.
POOLED_CONNECTIONS = 32
#: Longest server message carried into a condition; the API server's own (a quota's, a
#: webhook's) can be long, and status is read by every `kubectl get`.
MESSAGE_LIMIT = 500


@dataclass(frozen=True)
class CreateResult:
    """The child as created (or as found, when it is already the job's own), or why not."""

    obj: Optional[dict[str, Any]] = None
    #: When obj is None: AlreadyExists (held by an object the job does not own), Forbidden, Invalid...
    reason: str = ""
    message: str = ""


#: The Status cause the API server gives for a create in a namespace that is being deleted.
NAMESPACE_TERMINATING = "NamespaceTerminating"


def server_words(error: ApiException) -> tuple[str, str]:
    """The reason and message of the API server's Status body, bounded in length.

    A namespace being deleted answers 403 like a permission refusal; its cause
    (NamespaceTerminating) is the reason then, so that no one mistakes the race for missing RBAC."""
    try:
        body = json.loads(error.body or "{}")
    except (TypeError, ValueError):
        body = {}
    body = body if isinstance(body, dict) else {}
    details = body.get("details")
    causes = details.get("causes") if isinstance(details, dict) else None
    if isinstance(causes, list) and any(isinstance(c, dict) and c.get("reason") == NAMESPACE_TERMINATING
                                        for c in causes):
        return NAMESPACE_TERMINATING, str(body.get("message") or "")[:MESSAGE_LIMIT]
    reason = str(body.get("reason") or error.reason or error.status)
    message = str(body.get("message") or error.reason or "")
    return reason[:100], message[:MESSAGE_LIMIT]


def load_config(kubeconfig: Optional[str] = None) -> client.ApiClient:
    """In a pod: the service account; elsewhere: the kubeconfig (KUBECONFIG or ~/.kube/config)."""
    configuration = connect(kubeconfig).api.configuration
    configuration.retries = False  # see the module's docstring
    # Pooled connections: the reconcile workers' calls run at once (runtime.API_THREADS); the
    # default pool (5 per core) would open and drop a connection per call beyond it.
    configuration.connection_pool_maxsize = max(configuration.connection_pool_maxsize or 0, POOLED_CONNECTIONS)
    api = BoundedApiClient(configuration)
    api.user_agent = OPERATOR_USER_AGENT  # the operator, not "OpenAPI-Generator", in audit logs
    return api


class KubeWriter:
    def __init__(self, api: client.ApiClient):
        self.api = api
        self.dynamic = DynamicClient(api)
        self.core = client.CoreV1Api(api)
        self.batch = client.BatchV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        #: Namespaces where listing events was forbidden (logged once each).
        self.events_forbidden: set[str] = set()

    def create(self, obj: Mapping[str, Any]) -> CreateResult:
        """Create a child; a name already held counts as created only if the holder is the job's."""
        resource = self.dynamic.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
        try:
            created = resource.create(body=dict(obj), namespace=obj["metadata"]["namespace"],
                                      field_manager=FIELD_MANAGER)
            return CreateResult(created.to_dict())
        except ApiException as error:
            if error.status == 409:
                return self._already_there(resource, obj)
            if error.status in REFUSING_STATUSES:
                return CreateResult(None, *server_words(error))
            raise

    def _already_there(self, resource: Any, obj: Mapping[str, Any]) -> CreateResult:
        """The object holding the child's name: the job's own (created by an earlier pass whose
        answer was lost), or a conflict naming what holds it."""
        meta = obj["metadata"]
        # Should the holder be gone by now, the NotFound raises: the runtime's retry creates it.
        existing: dict[str, Any] = resource.get(name=meta["name"], namespace=meta["namespace"]).to_dict()
        owner = controller_of(obj) or {}
        if owned_by(existing, str(owner.get("uid", ""))):
            return CreateResult(existing)
        return CreateResult(None, ALREADY_EXISTS, conflict_with(obj["kind"], existing).message[:MESSAGE_LIMIT])

    def failed_creates(self, namespace: str, job_uid: str) -> Optional[tuple[int, str, str]]:
        """The latest FailedCreate event of the Job with `job_uid`: (count, when, the server's
        message), or None. Listing events needs `list` on events; without it, None (logged)."""
        try:
            events = self.core.list_namespaced_event(
                namespace, field_selector=f"involvedObject.uid={job_uid},reason=FailedCreate", limit=50)
        except ApiException as error:
            if error.status == 403:
                if namespace not in self.events_forbidden:  # said once per namespace, not every pass
                    self.events_forbidden.add(namespace)
                    log.warning("cannot list events in %s (RBAC): pods refused to the Job controller go unreported",
                                namespace)
                return None
            raise

        def when(event: Any) -> datetime:
            moment = event.last_timestamp or event.event_time or event.metadata.creation_timestamp
            return moment or datetime.min.replace(tzinfo=timezone.utc)

        if not events.items:
            return None
        latest = max(events.items, key=when)
        count = sum(event.count or 1 for event in events.items)
        return count, rfc3339(when(latest)), (latest.message or "")[:MESSAGE_LIMIT]

    def workload(self, namespace: str, job_uid: str) -> WorkloadState:
        """Kueue's Workload of the Job with `job_uid` (found by Kueue's job-uid label), or why there
        is none to read. Read-only: the chart grants get/list/watch on workloads with kueue.enabled."""
        try:
            found = self.custom.list_namespaced_custom_object(
                KUEUE_GROUP, KUEUE_VERSION, namespace, KUEUE_WORKLOADS,
                label_selector=f"{KUEUE_JOB_UID_LABEL}={job_uid}", limit=5)
        except ApiException as error:
            if error.status == 404:
                return WorkloadState(missing="this cluster serves no Kueue Workloads: is Kueue installed?")
            if error.status == 403:
                return WorkloadState(missing="the operator may not read Kueue Workloads (RBAC: install the chart "
                                             "with kueue.enabled=true)")
            raise
        items = cast(dict[str, Any], found).get("items") or []
        if not items:
            return WorkloadState(missing="Kueue has made no Workload for the Job yet (is Kueue's batch/job "
                                         "integration enabled?)")
        return workload_state(items[0])

    def job_pods(self, namespace: str, name: str) -> list[dict[str, Any]]:
        """The pods of the job `name` (its JOB_NAME_LABEL), read from the API server itself: a
        quorum read, not the watch cache, so a replica that just took the lease sees the failed
        pod the failure rules judge. The caller keeps only those its Job owns."""
        response = self.core.list_namespaced_pod(namespace, label_selector=f"{JOB_NAME_LABEL}={name}",
                                                 limit=2 * MAX_WORKERS, _preload_content=False)
        items = json.loads(response.data).get("items") or []  # type: ignore[attr-defined]  # the API's own JSON, as the watch gives it
        return [item for item in items if isinstance(item, dict)]

    def restore_spec(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Replace the spec of an object of the job's own (the caller observed its uid) with the
        rendered one. A JSON patch `replace`, not a merge: a merge would keep fields someone added."""
        resource = self.dynamic.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
        meta = obj["metadata"]
        patched = resource.patch(body=[{"op": "replace", "path": "/spec", "value": obj["spec"]}],
                                 name=meta["name"], namespace=meta["namespace"],
                                 content_type="application/json-patch+json", field_manager=FIELD_MANAGER)
        return cast(dict[str, Any], patched.to_dict())

    def create_once(self, obj: Mapping[str, Any]) -> None:
        """Create `obj` unless it exists. For the job's token Secret, whose name nobody without the
        gateway key can know before this create (contract.metrics_token_secret): one that exists was
        created by an earlier pass for this very job. The operator may create Secrets, never read,
        list or patch them, so "already exists" can be judged by the name alone."""
        try:
            self.core.create_namespaced_secret(obj["metadata"]["namespace"], dict(obj))  # type: ignore[arg-type]
        except ApiException as error:
            if error.status != 409:
                raise

    def resize_job(self, namespace: str, name: str, workers: int) -> None:
        """parallelism and completions in one patch: an elastic Indexed Job accepts a change of
        completions only together with the same parallelism."""
        self.batch.patch_namespaced_job(name, namespace, {"spec": {"parallelism": workers, "completions": workers}},
                                        field_manager=FIELD_MANAGER)

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
