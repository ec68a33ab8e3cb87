"""The children's list+watch (controller/informer.py) on the wire: what it asks the apiserver,
how it reads list pages and watch streams, and what it does on 410 Gone, against a local HTTP
listener that answers as the apiserver would, in milliseconds. Against a real apiserver the
cluster tier runs it: every tests/cluster test sees its jobs' children through these watches."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlparse

import pytest

from tandem.contract import API_VERSION, JOB_NAME_LABEL
from tandem.controller import apiclient
from tandem.controller.cache import Cache
from tandem.controller.informer import Gone, Stream, Watch, streams
from tandem.controller.watching import CHILD_SELECTOR, CHILDREN
from tests.support.kubeconfig import local_kubeconfig

PODS = Stream(next(c for c in CHILDREN if c.kind == "Pod"), "ns")


class Apiserver(BaseHTTPRequestHandler):
    """Answers each GET with the next answer queued: (status, a JSON body) for a list, (status,
    [events]) for a watch, written one JSON line each; keeps the queries it got."""

    seen: ClassVar[list[tuple[str, dict[str, str]]]] = []
    answers: ClassVar[list[tuple[int, Any]]] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        url = urlparse(self.path)
        self.seen.append((url.path, {k: v[0] for k, v in parse_qs(url.query).items()}))
        status, body = self.answers.pop(0) if self.answers else (500, {"kind": "Status", "code": 500})
        lines = [json.dumps(e).encode() + b"\n" for e in body] if isinstance(body, list) else [json.dumps(body).encode()]
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()  # no length: the body ends when the connection closes, as a stream does
        for line in lines:
            self.wfile.write(line)
            self.wfile.flush()

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def apiserver(tmp_path: Path) -> Iterator[apiclient.AsyncApi]:
    Apiserver.seen, Apiserver.answers = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Apiserver)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield apiclient.AsyncApi(apiclient.endpoint(local_kubeconfig(tmp_path, server.server_address[1])), connections=0)
    server.shutdown()
    server.server_close()


def pod(name: str, version: str, phase: str = "Running", job: str = "j") -> dict[str, Any]:
    """A pod of job `job`'s Job, as a list's item (no kind or apiVersion) or a watch event's object."""
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": version, "labels": {JOB_NAME_LABEL: job},
                         "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": job, "controller": True}]},
            "status": {"phase": phase}}


def page(items: list[dict[str, Any]], version: str, more: str = "") -> tuple[int, dict[str, Any]]:
    return 200, {"kind": "PodList", "metadata": {"resourceVersion": version, **({"continue": more} if more else {})},
                 "items": items}


class Delivered(list[tuple[str, str, bool]]):
    """What the watch delivered: (kind, name, deleted); the objects themselves go to a real cache."""

    def __init__(self) -> None:
        super().__init__()
        self.cache = Cache()

    def __call__(self, kind: str, obj: dict[str, Any], deleted: bool) -> None:
        self.append((kind, obj["metadata"]["name"], deleted))
        self.cache.put_child(kind, obj, deleted=deleted)


def run(api: apiclient.AsyncApi, *calls: Any) -> Any:
    """Await the calls in order on one event loop (the client's session belongs to it), then
    close the client; the last call's answer."""
    async def in_order() -> Any:
        try:
            answer = None
            for call in calls:
                answer = await call()
            return answer
        finally:
            await api.close()

    return asyncio.run(in_order())


def run_until(api: apiclient.AsyncApi, deliver: Any, delivered: Delivered, count: int) -> None:
    """Run the pods' list+watch as the operator does, until `count` objects were delivered."""
    async def until() -> None:
        task = asyncio.create_task(Watch(api, PODS, deliver).run())
        while len(delivered) < count:
            await asyncio.sleep(0.01)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    run(api, lambda: asyncio.wait_for(until(), 10))


def test_streams_are_training_jobs_and_each_child_kind_cluster_wide_or_in_each_namespace():
    assert [s.path for s in streams(())] == [f"/apis/{API_VERSION}/trainingjobs", "/apis/batch/v1/jobs",
                                             "/api/v1/services", "/api/v1/pods",
                                             "/apis/networking.k8s.io/v1/networkpolicies"]
    paths = [s.path for s in streams(("a", "b"))]
    assert len(paths) == 2 * (1 + len(CHILDREN))
    assert "/api/v1/namespaces/b/pods" in paths and "/apis/batch/v1/namespaces/a/jobs" in paths


def test_a_list_is_selected_by_the_apiserver_read_page_by_page_and_its_items_named_by_kind(apiserver):
    Apiserver.answers = [page([pod("p0", "5")], "9", more="next"), page([pod("p1", "7")], "10")]
    delivered = Delivered()
    version = run(apiserver, Watch(apiserver, PODS, delivered).relist)
    assert version == "10"
    assert delivered == [("Pod", "p0", False), ("Pod", "p1", False)]
    first, second = Apiserver.seen
    assert first == ("/api/v1/namespaces/ns/pods", {"labelSelector": CHILD_SELECTOR, "limit": "500"})
    assert second[1]["continue"] == "next"
    cached = delivered.cache.pods[("ns", "j")]["p0"]
    assert (cached["kind"], cached["apiVersion"]) == ("Pod", "v1")


def test_a_relist_delivers_what_went_in_the_gap_as_deleted_and_a_failed_pod_stays_known(apiserver):
    Apiserver.answers = [page([pod("p0", "5"), pod("p1", "6", "Failed")], "9"), page([], "20")]
    delivered = Delivered()
    watch = Watch(apiserver, PODS, delivered)
    run(apiserver, watch.relist, watch.relist)
    assert delivered[2:] == [("Pod", "p0", True), ("Pod", "p1", True)] or \
        delivered[2:] == [("Pod", "p1", True), ("Pod", "p0", True)]
    assert ("ns", "j") not in delivered.cache.pods
    # The failure rules still see the failed pod deleted in the gap (its exit code, its conditions).
    assert [p["metadata"]["name"] for p in delivered.cache.pods_of(("ns", "j"))] == ["p1"]


def test_a_watch_delivers_each_event_follows_bookmarks_and_reads_lines_of_any_size(apiserver):
    big = pod("p1", "12")
    big["metadata"]["annotations"] = {"tandem.dev/large": "x" * 300_000}  # several reads of the socket
    Apiserver.answers = [(200, [{"type": "ADDED", "object": {**pod("p0", "11"), "kind": "Pod"}},
                                {"type": "MODIFIED", "object": big},
                                {"type": "BOOKMARK", "object": {"kind": "Pod", "metadata": {"resourceVersion": "15"}}},
                                {"type": "DELETED", "object": pod("p0", "16")},
                                {"type": "BOOKMARK", "object": {"kind": "Pod", "metadata": {"resourceVersion": "30"}}}])]
    delivered = Delivered()
    assert run(apiserver, lambda: Watch(apiserver, PODS, delivered).watch("10")) == "30"
    assert delivered == [("Pod", "p0", False), ("Pod", "p1", False), ("Pod", "p0", True)]
    [(path, query)] = Apiserver.seen
    assert path == "/api/v1/namespaces/ns/pods"
    assert query["labelSelector"] == CHILD_SELECTOR and query["watch"] == "true"
    assert (query["resourceVersion"], query["allowWatchBookmarks"]) == ("10", "true")
    assert list(delivered.cache.pods[("ns", "j")]) == ["p1"]


@pytest.mark.parametrize("answer", [
    (200, [{"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired"}}]),
    (410, {"kind": "Status", "code": 410, "reason": "Gone"}),
], ids=["error-event", "status"])
def test_a_compacted_resource_version_is_gone(apiserver, answer):
    Apiserver.answers = [answer]
    with pytest.raises(Gone):
        run(apiserver, lambda: Watch(apiserver, PODS, Delivered()).watch("3"))


def test_another_refusal_is_an_api_error_to_retry_not_a_relist(apiserver):
    Apiserver.answers = [(403, {"kind": "Status", "code": 403, "reason": "Forbidden"})]
    with pytest.raises(apiclient.ApiError) as refused:
        run(apiserver, lambda: Watch(apiserver, PODS, Delivered()).watch("3"))
    assert refused.value.status == 403


def test_run_lists_watches_and_lists_again_after_gone(apiserver):
    """The loop as the operator runs it: after 410 it lists again, and what went meanwhile is
    delivered deleted; a stream the apiserver ends is watched again from its last version."""
    Apiserver.answers = [page([pod("p0", "5")], "9"),
                         (200, [{"type": "MODIFIED", "object": pod("p0", "10")}]),  # then the stream ends
                         (200, [{"type": "ERROR", "object": {"kind": "Status", "code": 410}}]),
                         page([pod("p2", "40")], "41")]
    delivered = Delivered()
    run_until(apiserver, delivered, delivered, 4)
    assert delivered == [("Pod", "p0", False), ("Pod", "p0", False), ("Pod", "p2", False), ("Pod", "p0", True)]
    versions = [query.get("resourceVersion") for _, query in Apiserver.seen[:3]]
    assert versions == [None, "9", "10"]


def test_a_training_job_deleted_in_a_gap_is_forgotten_with_its_figures_collector(apiserver):
    """TrainingJobs are listed whole (no selector); one gone at the relist is delivered deleted
    with its uid, so that the operator lets its figures' collector go, as on a DELETED event."""
    job = {"metadata": {"name": "j", "namespace": "ns", "uid": "u-1", "resourceVersion": "4"},
           "spec": {}, "status": {}}
    Apiserver.answers = [page([job], "9"), page([], "20")]
    seen: list[tuple[str, dict[str, Any], bool]] = []
    stream = next(s for s in streams(("ns",)) if s.watched.kind == "TrainingJob")
    watch = Watch(apiserver, stream, lambda kind, obj, deleted: seen.append((kind, obj, deleted)))
    run(apiserver, watch.relist, watch.relist)
    assert "labelSelector" not in Apiserver.seen[0][1]
    (kind, listed, deleted), (_, gone, gone_deleted) = seen
    assert (kind, listed["kind"], deleted) == ("TrainingJob", "TrainingJob", False)
    assert gone_deleted and gone["metadata"] | {"labels": {}} == {"namespace": "ns", "name": "j", "uid": "u-1", "labels": {}}


def test_an_object_the_operator_fails_on_costs_a_relist_not_the_watch(apiserver):
    """A bug in handling one object (here: the first delivery raises) must not end the stream's
    task, which would leave the operator blind to the kind for good."""
    Apiserver.answers = [page([pod("p0", "5")], "9"), page([pod("p0", "5"), pod("p1", "6")], "9")]
    delivered = Delivered()
    failed = []

    def deliver(kind: str, obj: dict[str, Any], deleted: bool) -> None:
        if not failed:
            failed.append(obj["metadata"]["name"])
            raise ValueError("a bug")
        delivered(kind, obj, deleted)

    run_until(apiserver, deliver, delivered, 2)
    assert failed == ["p0"] and delivered == [("Pod", "p0", False), ("Pod", "p1", False)]
