"""The operator's cache of what the watches have seen: a late event never replaces a fresher
object (the operator puts its own writes in too), deletes always apply, and children are
filed under the TrainingJob that their job-name label names."""

from __future__ import annotations

from hypothesis import given, strategies as st

from tandem.contract import JOB_NAME_LABEL
from tandem.controller.cache import Cache, key_of, owner_key

KEY = ("team-a", "demo")


def training_job(resource_version, phase="Pending"):
    return {"metadata": {"name": "demo", "namespace": "team-a", "resourceVersion": str(resource_version),
                         "managedFields": [{"manager": "kubectl"}]},
            "spec": {"workers": 2}, "status": {"phase": phase}}


def child(name, resource_version, job="demo", phase="Running", owner="Job"):
    """A labelled child controlled as the job's would be: a pod by the Job, the rest by the TrainingJob."""
    return {"metadata": {"name": name, "namespace": "team-a", "resourceVersion": str(resource_version),
                         "labels": {JOB_NAME_LABEL: job}, "ownerReferences": _owned(owner, job, f"{job}-{owner}-uid")},
            "status": {"phase": phase}}


def test_keys():
    assert key_of(training_job(1)) == KEY
    assert owner_key(child("demo-0-x", 1)) == KEY
    assert owner_key({"metadata": {"name": "other", "namespace": "team-a"}}) is None


def test_a_newer_training_job_replaces_an_older_one_and_never_the_reverse():
    cache = Cache()
    assert cache.put_training_job(training_job(5, "Running")) == KEY
    cache.put_training_job(training_job(4, "Pending"))  # a late watch event
    assert cache.training_jobs[KEY]["status"]["phase"] == "Running"
    cache.put_training_job(training_job(6, "Succeeded"))
    assert cache.training_jobs[KEY]["status"]["phase"] == "Succeeded"
    cache.put_training_job(training_job(6, "Failed"))  # the same version again: taken
    assert cache.training_jobs[KEY]["status"]["phase"] == "Failed"


def test_versions_compare_as_numbers_not_text():
    cache = Cache()
    cache.put_training_job(training_job(10, "Running"))
    cache.put_training_job(training_job(9, "Pending"))  # "9" > "10" as text
    assert cache.training_jobs[KEY]["status"]["phase"] == "Running"


def test_an_object_without_a_usable_version_is_taken():
    cache = Cache()
    cache.put_training_job(training_job(5, "Running"))
    unversioned = training_job(0, "Pending")
    del unversioned["metadata"]["resourceVersion"]
    cache.put_training_job(unversioned)
    assert cache.training_jobs[KEY]["status"]["phase"] == "Pending"


def test_delete_applies_whatever_the_version():
    cache = Cache()
    cache.put_training_job(training_job(5))
    assert cache.put_training_job(training_job(3), deleted=True) == KEY
    assert KEY not in cache.training_jobs
    cache.put_training_job(training_job(3), deleted=True)  # deleting what is gone is no error
    assert cache.training_jobs == {}


def test_stored_copies_are_slim_and_independent_of_the_event():
    cache = Cache()
    event = training_job(1)
    cache.put_training_job(event)
    event["status"]["phase"] = "Failed"
    stored = cache.training_jobs[KEY]
    assert stored["status"]["phase"] == "Pending" and "managedFields" not in stored["metadata"]
    assert "managedFields" in event["metadata"]  # the caller's object is left as it was


def test_pods_are_kept_per_name_with_the_same_ordering():
    cache = Cache()
    assert cache.put_child("Pod", child("demo-0-x", 7, phase="Running")) == KEY
    cache.put_child("Pod", child("demo-1-x", 3, phase="Pending"))
    cache.put_child("Pod", child("demo-0-x", 6, phase="Pending"))  # late
    assert {n: p["status"]["phase"] for n, p in cache.pods[KEY].items()} == {"demo-0-x": "Running", "demo-1-x": "Pending"}
    cache.put_child("Pod", child("demo-0-x", 8, phase="Failed"))
    cache.put_child("Pod", child("demo-1-x", 4), deleted=True)
    assert {n: p["status"]["phase"] for n, p in cache.pods[KEY].items()} == {"demo-0-x": "Failed"}


def test_only_the_job_and_service_named_like_the_training_job_are_its_children():
    cache = Cache()
    assert cache.put_child("Job", child("demo", 2, owner="TrainingJob")) == KEY
    assert cache.put_child("Service", child("demo", 2, owner="TrainingJob")) == KEY
    # the TensorBoard's Service carries the label too: it wakes the job but is not its Service
    assert cache.put_child("Service", child("demo-tensorboard", 9, phase="X", owner="TrainingJob")) == KEY
    assert cache.services[KEY]["metadata"]["name"] == "demo"
    cache.put_child("Job", child("demo", 1, phase="Stale", owner="TrainingJob"))
    assert cache.jobs[KEY]["status"]["phase"] == "Running"
    cache.put_child("Job", child("demo", 1), deleted=True)
    assert KEY not in cache.jobs and KEY in cache.services


def test_children_without_the_job_label_are_ignored():
    cache = Cache()
    unlabelled = child("stray", 1)
    unlabelled["metadata"]["labels"] = {}
    assert cache.put_child("Pod", unlabelled) is None
    assert cache.put_child("Job", unlabelled) is None
    assert cache.pods == {} and cache.jobs == {}


def test_children_of_two_jobs_stay_apart():
    cache = Cache()
    cache.put_child("Pod", child("demo-0-x", 1))
    cache.put_child("Pod", child("other-0-x", 1, job="other"))
    assert set(cache.pods) == {KEY, ("team-a", "other")}


@given(st.lists(st.integers(1, 50), min_size=1, max_size=30))
def test_whatever_the_arrival_order_the_newest_version_is_kept(versions):
    cache = Cache()
    for version in versions:
        cache.put_training_job(training_job(version, phase=f"v{version}"))
        cache.put_child("Pod", child("demo-0-x", version, phase=f"v{version}"))
    newest = f"v{max(versions)}"
    assert cache.training_jobs[KEY]["status"]["phase"] == newest
    assert cache.pods[KEY]["demo-0-x"]["status"]["phase"] == newest


def test_the_jobs_network_policy_is_filed_apart_from_its_service():
    """The job's NetworkPolicy and its headless Service share the job's name: each has its own
    store. The TensorBoard's policy (another name) only wakes the job up."""
    cache = Cache()
    assert cache.put_child("NetworkPolicy", child("demo", 3, owner="TrainingJob")) == KEY
    assert cache.put_child("Service", child("demo", 4, owner="TrainingJob")) == KEY
    assert cache.network_policies[KEY]["metadata"]["resourceVersion"] == "3"
    assert cache.services[KEY]["metadata"]["resourceVersion"] == "4"
    assert cache.put_child("NetworkPolicy", child("demo-tensorboard", 5, owner="TrainingJob")) == KEY
    assert cache.network_policies[KEY]["metadata"]["name"] == "demo"
    cache.put_child("NetworkPolicy", child("demo", 6), deleted=True)
    assert KEY not in cache.network_policies and KEY in cache.services


def _owned(kind, name, uid):
    return [{"apiVersion": "batch/v1" if kind == "Job" else "tandem.dev/v1alpha1", "kind": kind, "name": name,
             "uid": uid, "controller": True}]


def real_job():
    """A Job as the API server returns it: a pod template, managedFields, conditions."""
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "demo", "namespace": "team-a", "uid": "job-uid", "resourceVersion": "12",
                         "creationTimestamp": "2026-11-26T07:00:00Z", "labels": {JOB_NAME_LABEL: "demo"},
                         "annotations": {"tandem.dev/restart": "1"}, "ownerReferences": _owned("TrainingJob", "demo", "tj-uid"),
                         "managedFields": [{"manager": "tandem", "fieldsV1": {"f:spec": {}}}]},
            "spec": {"parallelism": 2, "completions": 2, "completionMode": "Indexed", "suspend": False,
                     "template": {"metadata": {"labels": {JOB_NAME_LABEL: "demo"}},
                                  "spec": {"containers": [{"name": "worker", "image": "img:1",
                                                           "env": [{"name": "X", "value": "y" * 500}]}]}}},
            "status": {"active": 1, "failed": 1, "conditions": [
                {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                 "lastTransitionTime": "2026-11-26T07:01:00Z"}]}}


def real_pod(index, exit_code):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"demo-{index}-abc", "namespace": "team-a", "uid": f"pod-{index}",
                         "resourceVersion": "20", "labels": {JOB_NAME_LABEL: "demo",
                                                             "batch.kubernetes.io/job-completion-index": str(index)},
                         "annotations": {"tandem.dev/restart": "1",
                                         "batch.kubernetes.io/job-completion-index": str(index)},
                         "ownerReferences": _owned("Job", "demo", "job-uid"),
                         "managedFields": [{"manager": "kubelet"}]},
            "spec": {"nodeName": "n1", "containers": [{"name": "worker", "image": "img:1", "command": ["python"],
                                                       "env": [{"name": "X", "value": "y" * 500}]}],
                     "volumes": [{"name": "v", "emptyDir": {}}]},
            "status": {"phase": "Failed" if exit_code else "Running", "startTime": "2026-11-26T07:00:05Z",
                       "conditions": [{"type": "Ready", "status": "False"},
                                      {"type": "DisruptionTarget", "status": "True", "reason": "x"},
                                      {"type": "PodScheduled", "status": "True"}],
                       "containerStatuses": [{"name": "worker", "image": "img:1", "state": (
                           {"terminated": {"exitCode": exit_code, "reason": "Error", "message": "boom",
                                           "finishedAt": "2026-11-26T07:00:50Z"}} if exit_code
                           else {"waiting": {"reason": "ErrImagePull", "message": "no such image"}})}]}}


def test_the_slim_cache_keeps_all_that_reconcile_observes():
    """What observe() makes of the cached (slimmed) children is what it makes of the whole
    objects; the slimmed ones lost the pod template, the pod spec and managedFields."""
    from tandem.controller.observed import observe

    cache = Cache()
    job, pods = real_job(), [real_pod(0, 0), real_pod(1, 137)]
    cache.put_child("Job", job)
    for pod in pods:
        cache.put_child("Pod", pod)
    cached_job, cached_pods = cache.jobs[KEY], list(cache.pods[KEY].values())
    assert observe("tj-uid", None, cached_job, cached_pods) == observe("tj-uid", None, job, pods)
    assert "template" not in cached_job["spec"] and cached_job["spec"]["suspend"] is False
    assert cached_pods[0]["spec"] == {"containers": [{"name": "worker", "image": "img:1"}]}
    assert all("managedFields" not in p["metadata"] for p in (cached_job, *cached_pods))
    assert "template" in job["spec"] and "volumes" in pods[0]["spec"]  # the events are left as they were


def test_kubectls_last_applied_copy_is_not_cached():
    cache = Cache()
    applied = training_job(1)
    applied["metadata"]["annotations"] = {"kubectl.kubernetes.io/last-applied-configuration": "{...}", "team": "a"}
    cache.put_training_job(applied)
    assert cache.training_jobs[KEY]["metadata"]["annotations"] == {}


# ------------------------------------------------------------- what a tenant can make it hold


def _size(value) -> int:
    """The bytes of a cached JSON tree: every dict, list and string in it (sys.getsizeof, deep)."""
    import sys

    if isinstance(value, dict):
        return sys.getsizeof(value) + sum(_size(k) + _size(v) for k, v in value.items())
    if isinstance(value, list):
        return sys.getsizeof(value) + sum(_size(v) for v in value)
    return sys.getsizeof(value)


def _cached_bytes(cache: Cache) -> int:
    stores = (cache.training_jobs, cache.jobs, cache.services, cache.network_policies, cache.pods)
    return sum(_size(store) for store in stores)


def flooding_policy(i: int, annotation_bytes: int = 100_000, owned: bool = False) -> dict:
    """A tenant's NetworkPolicy labelled as job `job-i`'s, named like it, with a large annotation
    and a large spec; `owned`: with a forged controller reference (any uid) to that TrainingJob."""
    name = f"job-{i}"
    meta = {"name": name, "namespace": "team-a", "uid": f"np-{i}", "resourceVersion": str(i + 1),
            "labels": {JOB_NAME_LABEL: name, "app.kubernetes.io/managed-by": "tandem"},
            "annotations": {"padding": "x" * annotation_bytes}}
    if owned:
        meta["ownerReferences"] = _owned("TrainingJob", name, f"forged-{i}")
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta,
            "spec": {"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}]}}


def test_a_flood_of_labelled_policies_with_large_annotations_stays_small():
    """200 NetworkPolicies of 100 KB each (20 MB as the tenant wrote them): without a TrainingJob
    of their name none is kept; with one (each job's name taken by a foreign policy) only the
    stub that reports the conflict is kept: about 2 KB as Python holds it, whatever its size."""
    cache = Cache()
    for i in range(200):
        assert cache.put_child("NetworkPolicy", flooding_policy(i)) is None
    assert cache.network_policies == {} and _cached_bytes(cache) < 1_000
    for i in range(200):
        cache.put_training_job({"metadata": {"name": f"job-{i}", "namespace": "team-a", "uid": f"tj-{i}",
                                             "resourceVersion": "1"}, "spec": {}})
    before = _cached_bytes(cache)
    for i in range(200):
        assert cache.put_child("NetworkPolicy", flooding_policy(i)) == ("team-a", f"job-{i}")
        cache.put_child("NetworkPolicy", flooding_policy(i, owned=True))  # a forged owner: the wrong uid
    grown = _cached_bytes(cache) - before
    assert len(cache.network_policies) == 200 and grown < 200 * 4_000, grown  # < 4% of what was written
    assert all("annotations" not in p["metadata"] and "spec" not in p for p in cache.network_policies.values())


def test_a_forged_owner_before_the_training_job_is_cached_is_cut_to_a_stub_when_it_is():
    cache = Cache()
    cache.put_child("NetworkPolicy", flooding_policy(0, annotation_bytes=10, owned=True))
    assert "spec" in cache.network_policies[("team-a", "job-0")]  # the owner's uid is not known yet
    cache.put_training_job({"metadata": {"name": "job-0", "namespace": "team-a", "uid": "tj-0"}, "spec": {}})
    stub = cache.network_policies[("team-a", "job-0")]
    assert "spec" not in stub and stub["metadata"]["ownerReferences"][0]["uid"] == "forged-0"


def test_the_conflict_a_foreign_child_causes_is_still_reported():
    """observe() names the holder of a child's name from the stub as from the whole object."""
    from tandem.controller.observed import observe

    cache = Cache()
    cache.put_training_job({"metadata": {"name": "demo", "namespace": "team-a", "uid": "tj-uid"}, "spec": {}})
    foreign = real_job()
    foreign["metadata"]["ownerReferences"] = _owned("TrainingJob", "demo", "someone-elses")
    cache.put_child("Job", foreign)
    assert "template" not in cache.jobs[KEY].get("spec", {})
    assert observe("tj-uid", None, cache.jobs[KEY], []) == observe("tj-uid", None, foreign, [])


def test_only_pods_of_the_jobs_own_job_are_kept():
    cache = Cache()
    cache.put_child("Job", real_job())
    stray = real_pod(0, 0)
    stray["metadata"]["ownerReferences"] = _owned("Job", "demo", "another-job-uid")
    cache.put_child("Pod", stray)
    bare = real_pod(1, 0)
    del bare["metadata"]["ownerReferences"]
    cache.put_child("Pod", bare)
    assert cache.pods.get(KEY, {}) == {}
    cache.put_child("Pod", real_pod(0, 0))
    assert list(cache.pods[KEY]) == ["demo-0-abc"]


def test_only_tandems_and_the_read_annotations_are_cached():
    cache = Cache()
    pod = real_pod(0, 0)
    pod["metadata"]["annotations"]["tenant.example/notes"] = "x" * 100_000
    cache.put_child("Pod", pod)
    assert cache.pods[KEY]["demo-0-abc"]["metadata"]["annotations"] == {
        "tandem.dev/restart": "1", "batch.kubernetes.io/job-completion-index": "0"}
