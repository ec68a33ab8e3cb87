"""What the operator watches, and kopf's settings for it.

Children (Jobs, Services, Pods, NetworkPolicies) are selected by the apiserver, not by us: a
filter applied after the objects arrive (kopf's `labels=` on a handler) would let every Pod, Job
and Service of every tenant cross the wire and be parsed, so that a cluster-wide operator's
memory and CPU grew with the cluster rather than with its own jobs. The children's list and
watch requests carry CHILD_SELECTOR as their `labelSelector`, as client-go's informers do with a
filtered ListWatch: only objects that carry JOB_NAME_LABEL reach the operator. The operator
watches them itself (informer.py); kopf watches only the TrainingJobs, which are all ours.

kopf keeps no diff base here (`EventsOnlyDiffBase`): it builds one for every event, a deep copy of the
whole body, for its change handlers and daemons, and the operator registers neither.

kopf's own requests (the initial lists, its warning events) time out like ours (timing.py); every
initial list comes in pages of LIST_PAGE_SIZE objects, so that one page fits that timeout and a
job of thousands of pods never arrives as one response held whole in memory.
"""

from __future__ import annotations

import importlib
import json
import logging
import types
from dataclasses import dataclass
from typing import Any, Iterable, Optional

import kopf
import orjson

from ..contract import JOB_NAME_LABEL
from .timing import API_TIMEOUT_SECONDS, WATCH_CLIENT_TIMEOUT_SECONDS, WATCH_SERVER_TIMEOUT_SECONDS


@dataclass(frozen=True)
class Child:
    group: str
    version: str
    plural: str
    kind: str


#: The children a TrainingJob owns, as the operator watches them (informer.py).
CHILDREN = (
    Child("batch", "v1", "jobs", "Job"),
    Child("", "v1", "services", "Service"),
    Child("", "v1", "pods", "Pod"),
    Child("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy"),
)
#: The server-side selector of every child watch: the object names its TrainingJob.
CHILD_SELECTOR = JOB_NAME_LABEL
#: Objects per page of an initial list (client-go's informers page by 500 too).
LIST_PAGE_SIZE = 500
#: Seconds kopf keeps an object's worker task after its last event (kopf's default: 5). The
#: task holds that last event's whole body (managedFields, pod template and all) while it
#: waits: with thousands of objects changing at once, 5 s of bodies was a large part of the
#: operator's peak memory (bench B3). The cache keeps its own slim copy; a new event for the
#: object simply starts a new task.
WORKER_IDLE_SECONDS = 0.5


class EventsOnlyDiffBase(kopf.DiffBaseStorage):
    """No diff base: an empty essence for every object, nothing stored on it.

    kopf builds an object's essence on every event (a `copy.deepcopy` of the whole body, then
    its progress fields cleared) whatever handlers are registered, and compares it with the
    stored one; only change handlers (on.create/update/resume/delete/field) and daemons or
    timers read that diff. The operator registers event handlers only (runtime.register), so
    the copy was pure cost: the largest single item of its CPU profile at 1,000 jobs (bench
    B3). `assert_events_only` keeps the two facts together: a change handler added later
    fails the operator's start instead of silently seeing no changes."""

    def build(self, *, body: kopf.Body, extra_fields: Optional[Iterable[Any]] = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> Optional[kopf.BodyEssence]:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


def assert_events_only(registry: kopf.OperatorRegistry) -> None:
    """Refuse a registry with handlers that need a diff base (see `EventsOnlyDiffBase`)."""
    needing = [h.id for h in registry._changing.get_all_handlers()] + [
        h.id for h in registry._spawning.get_all_handlers()
    ]
    if needing:
        raise RuntimeError(
            f"handlers {needing} need kopf's diff base, which watching.EventsOnlyDiffBase does not keep: "
            "register event handlers only, or give kopf its default diffbase_storage"
        )


def operator_settings(namespaced: bool) -> kopf.OperatorSettings:
    """kopf's settings, given before it starts any watch."""
    settings = kopf.OperatorSettings()
    settings.watching.chunk_size = LIST_PAGE_SIZE
    settings.queueing.idle_timeout = WORKER_IDLE_SECONDS
    settings.watching.server_timeout = WATCH_SERVER_TIMEOUT_SECONDS
    settings.watching.client_timeout = WATCH_CLIENT_TIMEOUT_SECONDS
    settings.networking.request_timeout = API_TIMEOUT_SECONDS
    settings.networking.connect_timeout = API_TIMEOUT_SECONDS
    settings.posting.level = logging.WARNING  # kopf's own events: warnings only
    settings.persistence.diffbase_storage = EventsOnlyDiffBase()
    if namespaced:
        # Namespaced RBAC cannot list namespaces or CRDs; without this kopf retries those
        # forbidden scans for about a minute before it starts watching.
        settings.scanning.disabled = True
    return settings


#: kopf's module that reads watch streams, and the one line of it that decodes each event.
KOPF_STREAM_MODULE = "kopf._cogs.clients.api"
KOPF_STREAM_DECODE = "json.loads(line.decode('utf-8'))"


def decode_watch_events_with_orjson() -> None:
    """Have kopf decode each watch event with orjson instead of the standard library's json.

    Every event of every watched object (whole Pods and Jobs, managedFields and all) is one
    `json.loads` in kopf's stream reader: a quarter of the operator's CPU at 1,000 jobs (bench
    B3), which orjson does in a fraction of the time, to the same dicts. kopf offers no setting
    for its decoder, so this replaces the `json` its stream module sees with one whose `loads`
    is orjson's (that module uses `json` for nothing else). It is pinned to kopf's source:
    tests/unit/test_operator_limits.py fails on a kopf whose stream reader no longer decodes
    that way, rather than letting an upgrade silently undo the saving."""
    module = importlib.import_module(KOPF_STREAM_MODULE)
    module.json = types.SimpleNamespace(loads=orjson.loads, dumps=json.dumps)  # type: ignore[attr-defined]
