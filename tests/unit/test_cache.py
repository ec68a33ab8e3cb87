"""The operator's cache of what the watches have seen: a late event never replaces a fresher
object (the operator puts its own writes in too), deletes always apply, and children are
filed under the TrainingJob that their job-name label names."""

from __future__ import annotations

from hypothesis import given, strategies as st

from tandem.controller.cache import Cache, key_of, owner_key
from tandem.render.context import JOB_NAME_LABEL

KEY = ("team-a", "demo")


def training_job(resource_version, phase="Pending"):
    return {"metadata": {"name": "demo", "namespace": "team-a", "resourceVersion": str(resource_version),
                         "managedFields": [{"manager": "kubectl"}]},
            "spec": {"workers": 2}, "status": {"phase": phase}}


def child(name, resource_version, job="demo", phase="Running"):
    return {"metadata": {"name": name, "namespace": "team-a", "resourceVersion": str(resource_version),
                         "labels": {JOB_NAME_LABEL: job}},
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
    assert cache.put_child("Job", child("demo", 2)) == KEY
    assert cache.put_child("Service", child("demo", 2)) == KEY
    # the TensorBoard's Service carries the label too: it wakes the job but is not its Service
    assert cache.put_child("Service", child("demo-tensorboard", 9, phase="X")) == KEY
    assert cache.services[KEY]["metadata"]["name"] == "demo"
    cache.put_child("Job", child("demo", 1, phase="Stale"))
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
    assert cache.put_child("NetworkPolicy", child("demo", 3)) == KEY
    assert cache.put_child("Service", child("demo", 4)) == KEY
    assert cache.network_policies[KEY]["metadata"]["resourceVersion"] == "3"
    assert cache.services[KEY]["metadata"]["resourceVersion"] == "4"
    assert cache.put_child("NetworkPolicy", child("demo-tensorboard", 5)) == KEY
    assert cache.network_policies[KEY]["metadata"]["name"] == "demo"
    cache.put_child("NetworkPolicy", child("demo", 6), deleted=True)
    assert KEY not in cache.network_policies and KEY in cache.services
