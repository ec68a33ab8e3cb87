"""The operator's writes to the Kubernetes API, through its own client (apiclient.py).

Children are created (POST) with Tandem's field manager, never applied with force: a name
already taken is the job's own only if the object carries the job's uid as its controller, and
an object of someone else's is left as it is and reported. Status goes through the status
subresource. Every call ends within timing.API_TIMEOUT_SECONDS and is not retried here: the work
queue retries with its own pacing.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping, Optional

from ..contract import (
    API_VERSION,
    FIELD_MANAGER,
    JOB_NAME_LABEL,
    KIND,
    KUEUE_GROUP,
    KUEUE_JOB_UID_LABEL,
    KUEUE_VERSION,
    KUEUE_WORKLOADS,
    MAX_WORKERS,
    PLURAL,
)
from ..errors import NotFound
from ..kubeapi import error_type, status_body
from .apiclient import JSON_PATCH, MERGE_PATCH, ApiError, AsyncApi, resource_path
from .observed import ALREADY_EXISTS, conflict_with, controller_of, owned_by
from .reconcile import Event, rfc3339
from .watching import CHILDREN
from .workload import WorkloadState, workload_state

log = logging.getLogger("tandem.operator")

#: HTTP statuses of a create the API server refused for what the object is or where it goes
#: (400 bad request, 403 Pod Security / quota / a namespace being deleted, 422 invalid): the
#: same request would be refused again, so it is reported and retried with backoff. Other
#: errors (5xx, 429, a lost connection) raise and take the runtime's ordinary retry.
REFUSING_STATUSES = (400, 403, 422)
#: Longest server message carried into a condition; the API server's own (a quota's, a
#: webhook's) can be long, and status is read by every `kubectl get`.
MESSAGE_LIMIT = 500
#: The resource (plural) of each kind the operator creates: its watched children, the job's
#: token Secret and its TensorBoard Deployment (tests/unit/test_operator_client.py renders them all).
PLURALS = {child.kind: child.plural for child in CHILDREN} | {"Secret": "secrets", "Deployment": "deployments"}


@dataclass(frozen=True)
class CreateResult:
    """The child as created (or as found, when it is already the job's own), or why not."""

    obj: Optional[dict[str, Any]] = None
    #: When obj is None: AlreadyExists (held by an object the job does not own), Forbidden, Invalid...
    reason: str = ""
    message: str = ""


#: The Status cause the API server gives for a create in a namespace that is being deleted.
NAMESPACE_TERMINATING = "NamespaceTerminating"


def server_words(error: ApiError) -> tuple[str, str]:
    """The reason and message of the API server's Status body, bounded in length.

    A namespace being deleted answers 403 like a permission refusal; its cause
    (NamespaceTerminating) is the reason then, so that no one mistakes the race for missing RBAC."""
    body = status_body(error.body)
    details = body.get("details")
    causes = details.get("causes") if isinstance(details, dict) else None
    if isinstance(causes, list) and any(isinstance(c, dict) and c.get("reason") == NAMESPACE_TERMINATING
                                        for c in causes):
        return NAMESPACE_TERMINATING, str(body.get("message") or "")[:MESSAGE_LIMIT]
    reason = str(body.get("reason") or error.reason or error.status)
    message = str(body.get("message") or error.reason or "")
    return reason[:100], message[:MESSAGE_LIMIT]


def object_path(obj: Mapping[str, Any], name: str = "") -> str:
    """The path of `obj`'s collection, or of the object `name` in it."""
    return resource_path(obj["apiVersion"], PLURALS[obj["kind"]], obj["metadata"]["namespace"], name)


def _timestamp(value: Any) -> datetime:
    if isinstance(value, str) and value:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return datetime.min.replace(tzinfo=timezone.utc)


def _ignore_missing(error: ApiError) -> None:
    if error_type(error.status) is not NotFound:
        raise error


class KubeWriter:
    def __init__(self, api: AsyncApi):
        self.api = api
        #: Namespaces where listing events was forbidden (logged once each).
        self.events_forbidden: set[str] = set()

    async def create(self, obj: Mapping[str, Any]) -> CreateResult:
        """Create a child; a name already held counts as created only if the holder is the job's."""
        try:
            created = await self.api.call("POST", object_path(obj), query={"fieldManager": FIELD_MANAGER}, body=obj)
            return CreateResult(created)
        except ApiError as error:
            if error.status == 409:
                return await self._already_there(obj)
            if error.status in REFUSING_STATUSES:
                return CreateResult(None, *server_words(error))
            raise

    async def _already_there(self, obj: Mapping[str, Any]) -> CreateResult:
        """The object holding the child's name: the job's own (created by an earlier pass whose
        answer was lost), or a conflict naming what holds it."""
        # Should the holder be gone by now, the NotFound raises: the runtime's retry creates it.
        existing: dict[str, Any] = await self.api.call("GET", object_path(obj, obj["metadata"]["name"]))
        owner = controller_of(obj) or {}
        if owned_by(existing, str(owner.get("uid", ""))):
            return CreateResult(existing)
        return CreateResult(None, ALREADY_EXISTS, conflict_with(obj["kind"], existing).message[:MESSAGE_LIMIT])

    async def failed_creates(self, namespace: str, job_uid: str) -> Optional[tuple[int, str, str]]:
        """The latest FailedCreate event of the Job with `job_uid`: (count, when, the server's
        message), or None. Listing events needs `list` on events; without it, None (logged)."""
        try:
            found = await self.api.call("GET", resource_path("v1", "events", namespace), query={
                "fieldSelector": f"involvedObject.uid={job_uid},reason=FailedCreate", "limit": "50"})
        except ApiError as error:
            if error.status == 403:
                if namespace not in self.events_forbidden:  # said once per namespace, not every pass
                    self.events_forbidden.add(namespace)
                    log.warning("cannot list events in %s (RBAC): pods refused to the Job controller go unreported",
                                namespace)
                return None
            raise

        def when(event: dict[str, Any]) -> datetime:
            return _timestamp(event.get("lastTimestamp") or event.get("eventTime")
                              or (event.get("metadata") or {}).get("creationTimestamp"))

        events = [event for event in (found or {}).get("items") or [] if isinstance(event, dict)]
        if not events:
            return None
        latest = max(events, key=when)
        count = sum(event.get("count") or 1 for event in events)
        return count, rfc3339(when(latest)), str(latest.get("message") or "")[:MESSAGE_LIMIT]

    async def workload(self, namespace: str, job_uid: str) -> WorkloadState:
        """Kueue's Workload of the Job with `job_uid` (found by Kueue's job-uid label), or why there
        is none to read. Read-only: the chart grants get/list/watch on workloads with kueue.enabled."""
        try:
            found = await self.api.call("GET", resource_path(f"{KUEUE_GROUP}/{KUEUE_VERSION}", KUEUE_WORKLOADS, namespace),
                                        query={"labelSelector": f"{KUEUE_JOB_UID_LABEL}={job_uid}", "limit": "5"})
        except ApiError as error:
            if error.status == 404:
                return WorkloadState(missing="this cluster serves no Kueue Workloads: is Kueue installed?")
            if error.status == 403:
                return WorkloadState(missing="the operator may not read Kueue Workloads (RBAC: install the chart "
                                             "with kueue.enabled=true)")
            raise
        items = (found or {}).get("items") or []
        if not items:
            return WorkloadState(missing="Kueue has made no Workload for the Job yet (is Kueue's batch/job "
                                         "integration enabled?)")
        return workload_state(items[0])

    async def job_pods(self, namespace: str, name: str) -> list[dict[str, Any]]:
        """The pods of the job `name` (its JOB_NAME_LABEL), read from the API server itself: a
        quorum read, not the watch cache, so a replica that just took the lease sees the failed
        pod the failure rules judge. The caller keeps only those its Job owns."""
        found = await self.api.call("GET", resource_path("v1", "pods", namespace), query={
            "labelSelector": f"{JOB_NAME_LABEL}={name}", "limit": str(2 * MAX_WORKERS)})
        return [item for item in (found or {}).get("items") or [] if isinstance(item, dict)]

    async def restore_spec(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Replace the spec of an object of the job's own (the caller observed its uid) with the
        rendered one. A JSON patch `replace`, not a merge: a merge would keep fields someone added."""
        patched: dict[str, Any] = await self.api.call(
            "PATCH", object_path(obj, obj["metadata"]["name"]), query={"fieldManager": FIELD_MANAGER},
            body=[{"op": "replace", "path": "/spec", "value": obj["spec"]}], content_type=JSON_PATCH)
        return patched

    async def create_once(self, obj: Mapping[str, Any]) -> None:
        """Create `obj` unless it exists. For the job's token Secret, whose name nobody without the
        gateway key can know before this create (contract.metrics_token_secret): one that exists was
        created by an earlier pass for this very job. The operator may create Secrets, never read,
        list or patch them, so "already exists" can be judged by the name alone."""
        try:
            await self.api.call("POST", object_path(obj), body=obj)
        except ApiError as error:
            if error.status != 409:
                raise

    async def resize_job(self, namespace: str, name: str, workers: int) -> None:
        """parallelism and completions in one patch: an elastic Indexed Job accepts a change of
        completions only together with the same parallelism."""
        await self.api.call("PATCH", resource_path("batch/v1", "jobs", namespace, name),
                            query={"fieldManager": FIELD_MANAGER},
                            body={"spec": {"parallelism": workers, "completions": workers}}, content_type=MERGE_PATCH)

    async def delete_job(self, namespace: str, name: str) -> None:
        """Foreground: the Job object stays until its pods are gone, so a new group never
        meets the old one under the same pod hostnames."""
        try:
            await self.api.call("DELETE", resource_path("batch/v1", "jobs", namespace, name),
                                query={"propagationPolicy": "Foreground"})
        except ApiError as error:
            _ignore_missing(error)

    async def delete_training_job(self, namespace: str, name: str) -> None:
        try:
            await self.api.call("DELETE", resource_path(API_VERSION, PLURAL, namespace, name),
                                query={"propagationPolicy": "Background"})
        except ApiError as error:
            _ignore_missing(error)

    async def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> Optional[dict[str, Any]]:
        """The object as patched, or None when it is gone."""
        try:
            patched: dict[str, Any] = await self.api.call(
                "PATCH", resource_path(API_VERSION, PLURAL, namespace, name, "status"),
                body={"status": dict(status)}, content_type=MERGE_PATCH)
            return patched
        except ApiError as error:
            _ignore_missing(error)
            return None

    async def post_event(self, owner: Mapping[str, Any], event: Event) -> None:
        meta = owner["metadata"]
        now = rfc3339(datetime.now(timezone.utc))
        body = {
            "apiVersion": "v1", "kind": "Event",
            # Named as client-go names events: <object>.<unix nanoseconds in hex>, so names sort by time.
            "metadata": {"name": f"{meta['name']}.{time.time_ns():x}", "namespace": meta["namespace"]},
            "involvedObject": {"apiVersion": API_VERSION, "kind": KIND, "name": meta["name"],
                               "namespace": meta["namespace"], "uid": meta.get("uid")},
            "reason": event.reason, "message": event.message[:1024], "type": event.type,
            "source": {"component": FIELD_MANAGER}, "firstTimestamp": now, "lastTimestamp": now, "count": 1,
            "reportingComponent": FIELD_MANAGER, "reportingInstance": FIELD_MANAGER,
        }
        try:
            await self.api.call("POST", resource_path("v1", "events", meta["namespace"]), body=body)
        except ApiError:
            pass  # events are best effort; a lost event must never stop a reconcile

    async def close(self) -> None:
        await self.api.close()

    def now(self) -> str:
        return rfc3339(datetime.now(timezone.utc))
