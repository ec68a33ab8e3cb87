"""What the operator watches, and kopf's settings for it.

Children (Jobs, Services, Pods) are selected by the apiserver, not by us: kopf's handler filters
(`labels=` on a handler) run after every object of the type has crossed the wire and been parsed,
so a cluster-wide operator would receive every Pod, Job and Service of every tenant, and its
memory and CPU would grow with the cluster rather than with its own jobs. kopf passes
`settings.watching.label_selectors` as the `labelSelector` of its list and watch requests, as
client-go's informers do with a filtered ListWatch. Only objects that carry JOB_NAME_LABEL reach
the operator; TrainingJobs are all watched (they are ours).

kopf's own requests (the initial lists, its warning events) time out like ours (timing.py); the
initial list comes in pages of LIST_PAGE_SIZE objects, so that one page fits that timeout and a
job of thousands of pods never arrives as one response held whole in memory.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import kopf

from ..contract import JOB_NAME_LABEL
from .timing import API_TIMEOUT_SECONDS, WATCH_CLIENT_TIMEOUT_SECONDS, WATCH_SERVER_TIMEOUT_SECONDS


@dataclass(frozen=True)
class Child:
    group: str
    version: str
    plural: str
    kind: str


#: The children a TrainingJob owns, as the operator watches them.
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


def operator_settings(namespaced: bool) -> kopf.OperatorSettings:
    """kopf's settings, given before it starts any watch."""
    settings = kopf.OperatorSettings()
    for child in CHILDREN:
        settings.watching.label_selectors[child.group, child.version, child.plural] = CHILD_SELECTOR
    settings.watching.chunk_size = LIST_PAGE_SIZE
    settings.queueing.idle_timeout = WORKER_IDLE_SECONDS
    settings.watching.server_timeout = WATCH_SERVER_TIMEOUT_SECONDS
    settings.watching.client_timeout = WATCH_CLIENT_TIMEOUT_SECONDS
    settings.networking.request_timeout = API_TIMEOUT_SECONDS
    settings.networking.connect_timeout = API_TIMEOUT_SECONDS
    settings.posting.level = logging.WARNING  # kopf's own events: warnings only
    if namespaced:
        # Namespaced RBAC cannot list namespaces or CRDs; without this kopf retries those
        # forbidden scans for about a minute before it starts watching.
        settings.scanning.disabled = True
    return settings
