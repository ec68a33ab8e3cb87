"""What the operator watches, and what kopf (its lifecycle, not its watches) is told.

The operator lists and watches its TrainingJobs and their children itself (informer.py). Children
(Jobs, Services, Pods, NetworkPolicies) are selected by the apiserver, not by us: a filter
applied after the objects arrive (kopf's `labels=` on a handler) would let every Pod, Job and
Service of every tenant cross the wire and be parsed, so that a cluster-wide operator's memory
and CPU grew with the cluster rather than with its own jobs. The children's list and watch
requests carry CHILD_SELECTOR as their `labelSelector`, as client-go's informers do with a
filtered ListWatch: only objects that carry JOB_NAME_LABEL reach the operator. TrainingJobs are
all watched (they are ours). Every list comes in pages of LIST_PAGE_SIZE objects, so that one
page fits the API timeout and a job of thousands of pods never arrives as one response held
whole in memory.

kopf runs the operator's lifecycle (start-up and clean-up handlers, signals, the stop flag) and
watches nothing: `assert_watches_nothing` refuses a registry with a resource handler, which
would have kopf open a second watch of a kind beside the operator's own, at kopf's cost per
event (bench B3: the reason the watches are the operator's own).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import kopf

from ..contract import API_GROUP, JOB_NAME_LABEL, KIND, PLURAL, VERSION
from .timing import API_TIMEOUT_SECONDS


@dataclass(frozen=True)
class Watched:
    """A kind the operator lists and watches."""

    group: str
    version: str
    plural: str
    kind: str
    #: The labelSelector of every list and watch request of the kind ("" for all objects).
    selector: str = ""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


#: The server-side selector of every child watch: the object names its TrainingJob.
CHILD_SELECTOR = JOB_NAME_LABEL
#: The operator's own kind: every object of it.
TRAINING_JOBS = Watched(API_GROUP, VERSION, PLURAL, KIND)
#: The children a TrainingJob owns, as the operator watches them.
CHILDREN = (
    Watched("batch", "v1", "jobs", "Job", CHILD_SELECTOR),
    Watched("", "v1", "services", "Service", CHILD_SELECTOR),
    Watched("", "v1", "pods", "Pod", CHILD_SELECTOR),
    Watched("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", CHILD_SELECTOR),
)
#: Objects per page of a list (client-go's informers page by 500 too).
LIST_PAGE_SIZE = 500


def assert_watches_nothing(registry: kopf.OperatorRegistry) -> None:
    """Refuse a registry with handlers of resources: kopf would watch those kinds itself."""
    handlers = [h.id for r in (registry._watching, registry._changing, registry._spawning, registry._indexing,
                               registry._webhooks) for h in r.get_all_handlers()]
    if handlers:
        raise RuntimeError(
            f"kopf handlers {handlers} would have kopf watch resources beside the operator's own watches "
            "(controller/informer.py): deliver the events from there instead"
        )


def operator_settings(namespaced: bool) -> kopf.OperatorSettings:
    """kopf's settings, given before it starts."""
    settings = kopf.OperatorSettings()
    settings.networking.request_timeout = API_TIMEOUT_SECONDS
    settings.networking.connect_timeout = API_TIMEOUT_SECONDS
    settings.posting.level = logging.WARNING  # kopf's own events: warnings only
    if namespaced:
        # Namespaced RBAC cannot list namespaces or CRDs; without this kopf retries those
        # forbidden scans for about a minute before it starts.
        settings.scanning.disabled = True
    return settings
