"""What the watches have seen: TrainingJobs and their children, keyed by (namespace, job).

The operator is shared by every tenant, and anyone who may create a Service, NetworkPolicy or
Pod in a namespace can label it as a job's child. So the cache holds only what reconcile reads,
whatever a tenant writes: Tandem's own annotations and the Job controller's completion index,
no others; a child in full only when its controller ownerReference names its TrainingJob (a
pod: the job's Job) and, once that owner is cached, carries its uid; of a child named like a
cached TrainingJob but not its own, only the names and owner that report the conflict; of the
rest, nothing (docs/security.md, "Operator memory").
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

from ..contract import ANNOTATION_PREFIX, API_VERSION, COMPLETION_INDEX, JOB_NAME_LABEL, KIND
from .observed import Refusal, controller_of
from .workload import WorkloadState

Key = tuple[str, str]
#: Deleted failed pods remembered per job, the newest: the first failures of a group name its cause.
MAX_GONE_FAILED_PODS = 16


#: Annotations outside Tandem's prefix that reconcile reads (a pod's index, on older clusters).
READ_ANNOTATIONS = frozenset({COMPLETION_INDEX})


def read_annotation(key: str) -> bool:
    """Is this an annotation reconcile reads? Any other may be as large as the object allows
    (kubectl's last-applied copy; a tenant's 256 KB of anything) and is not cached."""
    return key.startswith(ANNOTATION_PREFIX) or key in READ_ANNOTATIONS
#: Strings up to this length are interned: the keys, phases, reasons and labels repeated in
#: every cached object are then held once, not once per object.
INTERN_UP_TO = 64


def _compact(value: Any) -> Any:
    """A copy of a JSON tree whose keys and short strings are interned."""
    if isinstance(value, dict):
        return {sys.intern(k) if isinstance(k, str) else k: _compact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_compact(v) for v in value]
    if isinstance(value, str) and len(value) <= INTERN_UP_TO:
        return sys.intern(value)
    return value


def _slim(obj: Mapping[str, Any], kind: str = "") -> dict[str, Any]:
    """The object as the cache keeps it: a compact copy without what no reconcile reads.

    Memory grows with the jobs, and at 1,000 jobs the cached bodies were most of the operator's
    (bench B3). Dropped: metadata.managedFields and every annotation reconcile does not read (any kind),
    a Job's pod template (the TrainingJob is the source of it; a Job's status and other spec
    fields are kept), and a Pod's spec but for its containers' names and images. Status and the
    rest of the metadata are kept whole: policies read the conditions, states and times there.
    What is dropped is dropped before the copy, so that interning walks only what is kept (the
    walk over managedFields and pod templates was the cache's largest CPU item at 1,000 jobs)."""
    kept = dict(obj)
    if isinstance(kept.get("metadata"), Mapping):
        meta = {k: v for k, v in kept["metadata"].items() if k != "managedFields"}
        if "annotations" in meta:
            meta["annotations"] = {k: v for k, v in (meta["annotations"] or {}).items() if read_annotation(k)}
        kept["metadata"] = meta
    spec = kept.get("spec")
    if kind == "Job" and isinstance(spec, Mapping):
        kept["spec"] = {k: v for k, v in spec.items() if k != "template"}
    elif kind == "Pod" and isinstance(spec, Mapping):
        kept["spec"] = {"containers": [{k: c[k] for k in ("name", "image") if k in c}
                                       for c in spec.get("containers") or [] if isinstance(c, Mapping)]}
    compacted: dict[str, Any] = _compact(kept)
    return compacted


def _stub(obj: Mapping[str, Any]) -> dict[str, Any]:
    """What a foreign object named like a job's child keeps: enough to report the conflict
    (controller/observed.py: conflict, holder) and to order its events."""
    meta = obj.get("metadata") or {}
    controller = controller_of(obj)
    kept = {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion") if k in meta}
    if controller is not None:
        kept["ownerReferences"] = [{k: controller[k] for k in ("apiVersion", "kind", "name", "uid", "controller")
                                    if k in controller}]
    return {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "metadata": kept}


def key_of(obj: Mapping[str, Any]) -> Key:
    meta = obj["metadata"]
    return meta.get("namespace", ""), meta["name"]


def owner_key(obj: Mapping[str, Any]) -> Optional[Key]:
    meta = obj.get("metadata", {})
    job = (meta.get("labels") or {}).get(JOB_NAME_LABEL)
    return (meta.get("namespace", ""), job) if job else None


@dataclass
class Cache:
    training_jobs: dict[Key, dict[str, Any]] = field(default_factory=dict)
    jobs: dict[Key, dict[str, Any]] = field(default_factory=dict)
    services: dict[Key, dict[str, Any]] = field(default_factory=dict)
    network_policies: dict[Key, dict[str, Any]] = field(default_factory=dict)
    pods: dict[Key, dict[str, dict[str, Any]]] = field(default_factory=dict)
    #: The API server's refusals of each job's creates, by child (kind, name): what it said and
    #: how many times in a row, which the retry backoff needs. Only this process knows them; a
    #: new leader learns them again at its first create.
    refusals: dict[Key, dict[tuple[str, str], Refusal]] = field(default_factory=dict)
    #: Kueue's Workload of each queued job, as last read (policy/queueing.py asks for reads).
    workloads: dict[Key, WorkloadState] = field(default_factory=dict)
    #: Each job's pods as last read from the API server directly (policy/failure.py asks for it
    #: when its Job failed and no failed pod was cached): (the Job's uid, the pods). Kept apart
    #: from the watched pods, so that a late watch event cannot hide the failed pod again.
    listed_pods: dict[Key, tuple[str, list[dict[str, Any]]]] = field(default_factory=dict)
    #: Each job's failed pods since deleted (by name), so that their failure stays known.
    gone_failed_pods: dict[Key, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def _newer(self, old: Optional[Mapping[str, Any]], new: Mapping[str, Any]) -> bool:
        """Never let a late watch event replace a fresher object we wrote ourselves."""
        if old is None:
            return True
        try:
            return int(new["metadata"]["resourceVersion"]) >= int(old["metadata"]["resourceVersion"])
        except (KeyError, ValueError, TypeError):
            return True

    def put_training_job(self, obj: Mapping[str, Any], deleted: bool = False) -> Key:
        key = key_of(obj)
        if deleted:
            self.training_jobs.pop(key, None)
            self.refusals.pop(key, None)  # a new TrainingJob of the same name starts clean
            self.workloads.pop(key, None)
            self.listed_pods.pop(key, None)
            self.gone_failed_pods.pop(key, None)
        elif self._newer(self.training_jobs.get(key), obj):
            self.training_jobs[key] = _slim(obj)
            self._forget_foreign_children(key)
        return key

    def _claimed(self, kind: str, key: Key, obj: Mapping[str, Any]) -> bool:
        """Does `obj` name its owner as the job's child would: a controller reference to the
        TrainingJob its label names (a pod: to the job's Job, named alike), with the owner's uid
        once the owner is cached? Labels alone prove nothing (controller/observed.py)."""
        controller = controller_of(obj)
        if controller is None or controller.get("name") != key[1]:
            return False
        if kind == "Pod":
            owner, owner_kind = self.jobs.get(key), "Job"
        else:
            owner, owner_kind = self.training_jobs.get(key), KIND
            if controller.get("apiVersion") != API_VERSION:
                return False
        if controller.get("kind") != owner_kind:
            return False
        return owner is None or controller.get("uid") == (owner.get("metadata") or {}).get("uid")

    def put_child(self, kind: str, obj: Mapping[str, Any], deleted: bool = False) -> Optional[Key]:
        key = owner_key(obj)
        if key is None:
            return None
        name = obj["metadata"]["name"]
        if kind == "Pod":
            pods = self.pods.setdefault(key, {})
            if deleted:
                gone = pods.pop(name, None)
                self._remember_failed(key, obj if (obj.get("status") or {}).get("phase") == "Failed" else gone)
            elif not self._claimed(kind, key, obj):
                pods.pop(name, None)  # no pod of the job's Job: observe would drop it anyway
            elif self._newer(pods.get(name), obj):
                pods[name] = _slim(obj, kind)
            if not pods:
                self.pods.pop(key, None)
            return key
        store = {"Job": self.jobs, "NetworkPolicy": self.network_policies}.get(kind, self.services)
        if name != key[1]:
            return key
        if deleted:
            store.pop(key, None)
        elif self._claimed(kind, key, obj):
            if self._newer(store.get(key), obj):
                store[key] = _slim(obj, kind)
        elif key in self.training_jobs:
            store[key] = _stub(obj)  # the job's name is taken: reconcile reports whose it is
        else:
            store.pop(key, None)
            return None
        return key

    def _forget_foreign_children(self, key: Key) -> None:
        """Once the TrainingJob's uid is known, what claimed it without that uid is a stub."""
        for kind, store in (("Job", self.jobs), ("Service", self.services), ("NetworkPolicy", self.network_policies)):
            child = store.get(key)
            if child is not None and not self._claimed(kind, key, child):
                store[key] = _stub(child)

    def refused(self, key: Key, kind: str, name: str, reason: str, message: str, at: str) -> None:
        """Record that creating a child of `key` was refused once more."""
        children = self.refusals.setdefault(key, {})
        previous = children.get((kind, name))
        attempts = previous.attempts + 1 if previous is not None else 1
        children[(kind, name)] = Refusal(kind, name, reason, message, attempts, at)

    def created(self, key: Key, kind: str, name: str) -> None:
        """A child of `key` exists now: its refusals are over."""
        children = self.refusals.get(key, {})
        children.pop((kind, name), None)
        if not children:
            self.refusals.pop(key, None)

    def replace_refusal(self, key: Key, kind: str, name: str, refusal: Optional[Refusal]) -> bool:
        """Put what was found about one child of `key` (None: nothing holds); True if it changed."""
        before = self.refusals.get(key, {}).get((kind, name))
        self.created(key, kind, name)
        if refusal is not None:
            self.refusals.setdefault(key, {})[(kind, name)] = refusal
        return refusal != before

    def _remember_failed(self, key: Key, obj: Optional[Mapping[str, Any]]) -> None:
        """A failed pod that is deleted (an evicted or preempted pod, one the pod GC removes with
        its lost node) goes on being its Job's failure: the failure rules need its exit code and
        DisruptionTarget condition, and the Job may be seen failed only after the pod is gone."""
        if obj is None or (obj.get("status") or {}).get("phase") != "Failed":
            return
        kept = _slim(obj, "Pod")
        kept["metadata"].setdefault("deletionTimestamp", "deleted")
        gone = self.gone_failed_pods.setdefault(key, {})
        gone[kept["metadata"]["name"]] = kept
        while len(gone) > MAX_GONE_FAILED_PODS:
            gone.pop(next(iter(gone)))

    def pods_of(self, key: Key) -> list[Mapping[str, Any]]:
        """The job's pods as watched, and its failed pods deleted since (observe keeps those of its Job)."""
        watched = self.pods.get(key, {})
        gone = [pod for name, pod in self.gone_failed_pods.get(key, {}).items() if name not in watched]
        return [*watched.values(), *gone]

    def listed(self, key: Key, job_uid: str, pods: Sequence[Mapping[str, Any]]) -> None:
        """Record the pods of the Job with `job_uid`, as read from the API server."""
        self.listed_pods[key] = (job_uid, [_slim(pod, "Pod") for pod in pods])
