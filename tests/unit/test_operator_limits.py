"""The operator's runtime limits, without a cluster (the cluster proof is
tests/cluster/test_operator_runtime.py): which children the operator asks the apiserver for, that every
API call and the Lease renewal end in time against an apiserver that never answers (a real TCP
listener that accepts and stays silent, as a paused apiserver does), and what /healthz says."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import kopf
import orjson
import pytest

from tandem._sys.ports import free_port
from tandem.contract import API_GROUP, JOB_NAME_LABEL, PLURAL, VERSION
from tandem.controller import apiclient, leader, timing, watching
from tandem.controller.actions import FailedCreatesRead
from tandem.controller.health import Health
from tandem.controller.informer import streams
from tandem.controller.queue import Progress
from tandem.controller.runtime import FAILED_CREATE_READS, Controller, OperatorConfig, register
from tandem.controller.watching import CHILDREN, EventsOnlyDiffBase, assert_events_only, operator_settings


def test_the_time_budget_fits_together():
    timing.check()


# ---------------------------------------------------------------------------- watch scope


@pytest.mark.parametrize("namespaces", [(), ("a", "b")])
def test_child_watches_are_label_selected_by_the_apiserver_and_kopf_watches_only_training_jobs(namespaces):
    """Every child stream asks the apiserver for labelled objects only (the query is built in one
    place: test_informer.py shows it on the wire); kopf, given a handler for TrainingJobs alone,
    opens no watch of children at all."""
    assert {s.child.kind for s in streams(namespaces)} == {"Job", "Service", "Pod", "NetworkPolicy"}
    assert {s.namespace for s in streams(namespaces)} == (set(namespaces) or {None})
    assert watching.CHILD_SELECTOR == JOB_NAME_LABEL
    registry = kopf.OperatorRegistry()
    register(registry, Controller(cast(Any, None), OperatorConfig()))
    for child in CHILDREN:
        resource = kopf.Resource(child.group, child.version, child.plural, kind=child.kind, namespaced=True)
        assert not registry._watching.has_handlers(resource), child
    assert registry._watching.has_handlers(kopf.Resource(API_GROUP, VERSION, PLURAL, kind="TrainingJob", namespaced=True))
    settings = operator_settings(bool(namespaces))
    ours = kopf.Resource(API_GROUP, VERSION, PLURAL, kind="TrainingJob", namespaced=True)
    assert settings.watching.label_selectors.collect(ours) == []
    assert settings.scanning.disabled is bool(namespaces)
    assert settings.networking.request_timeout == timing.API_TIMEOUT_SECONDS
    assert settings.watching.chunk_size


def test_kopf_decodes_watch_events_with_orjson_once_told(monkeypatch):
    """The saving rests on one line of kopf's stream reader: a kopf that decodes events some
    other way (or uses `json` for more) must fail here, not quietly lose it."""
    module = importlib.import_module(watching.KOPF_STREAM_MODULE)
    source = inspect.getsource(module)
    assert watching.KOPF_STREAM_DECODE in source and source.count("json.") == 1
    monkeypatch.setattr(module, "json", module.json)  # restored after the test
    watching.decode_watch_events_with_orjson()
    assert module.json.loads is orjson.loads
    assert module.json.loads('{"type": "ADDED", "object": {"metadata": {"name": "p"}}}') == \
        {"type": "ADDED", "object": {"metadata": {"name": "p"}}}


# ---------------------------------------------------------------------------- timeouts


class SilentServer:
    """Accepts connections and never answers: a paused apiserver, seen from its clients."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted = 0
        self._held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            self._held.append(connection)

    def close(self) -> None:
        self.listener.close()
        for connection in self._held:
            connection.close()


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


def kubeconfig_for(tmp_path: Path, port: int) -> str:
    path = tmp_path / "kubeconfig"
    path.write_text(f"""apiVersion: v1
kind: Config
clusters: [{{name: silent, cluster: {{server: "http://127.0.0.1:{port}"}}}}]
users: [{{name: nobody, user: {{token: t}}}}]
contexts: [{{name: silent, context: {{cluster: silent, user: nobody}}}}]
current-context: silent
""")
    return str(path)


def test_kopf_keeps_no_diff_base_because_the_operator_registers_event_handlers_only():
    """kopf deep-copies every event's body into a diff base for change handlers and daemons;
    the operator has none, so the settings keep an empty one, and a registry that gained a
    change handler or a daemon is refused rather than left blind to every change."""
    settings = operator_settings(namespaced=False)
    assert isinstance(settings.persistence.diffbase_storage, EventsOnlyDiffBase)
    body = kopf.Body({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"x": [1] * 100}})
    assert settings.persistence.diffbase_storage.build(body=body) == {}
    assert settings.persistence.diffbase_storage.fetch(body=body) is None

    registry = kopf.OperatorRegistry()
    register(registry, Controller(cast(Any, None), OperatorConfig()))
    assert_events_only(registry)  # the operator's own registry passes

    @kopf.on.update(API_GROUP, VERSION, PLURAL, registry=registry)
    def _changed(**_: Any) -> None: ...

    with pytest.raises(RuntimeError, match="_changed"):
        assert_events_only(registry)

    daemons = kopf.OperatorRegistry()

    @kopf.daemon(API_GROUP, VERSION, PLURAL, registry=daemons)
    async def _watching(**_: Any) -> None: ...

    with pytest.raises(RuntimeError, match="_watching"):
        assert_events_only(daemons)


def test_every_call_of_the_operators_clients_times_out_once_without_retries(silent, tmp_path):
    server = apiclient.endpoint(kubeconfig_for(tmp_path, silent.port))

    async def async_call() -> None:
        api = apiclient.AsyncApi(server, timeout=0.3)
        try:
            await api.call("GET", "/api/v1/namespaces/default")
        finally:
            await api.close()

    for name, call in (("async", lambda: asyncio.run(async_call())),
                       ("sync", lambda: apiclient.SyncApi(server).call("GET", "/api/v1/namespaces/default",
                                                                      timeout=0.3))):
        accepted = silent.accepted
        started = time.monotonic()
        with pytest.raises(apiclient.ApiUnreachable):
            call()
        took = time.monotonic() - started
        assert 0.25 < took < 1.5, (name, took)
        assert silent.accepted - accepted == 1, name  # a retry would have waited the whole timeout again


def test_lease_renewal_steps_down_by_its_deadline_when_the_apiserver_never_answers(silent, tmp_path, monkeypatch):
    """Before the timeouts, the renewal's read hung on such a server for ever: the leader never
    stepped down, and a follower took the expired lease while it still acted."""
    deadline = 0.8
    monkeypatch.setattr(leader, "RENEW_DEADLINE_SECONDS", deadline)
    monkeypatch.setattr(leader, "RETRY_SECONDS", 0.1)
    # A single call may take longer than the whole deadline: the deadline must still hold.
    monkeypatch.setattr(leader, "API_TIMEOUT_SECONDS", 30.0)
    api = apiclient.SyncApi(apiclient.endpoint(kubeconfig_for(tmp_path, silent.port)))
    elector = leader.LeaderElector(api, "kube-system", me="test")
    stop, lost = threading.Event(), threading.Event()
    started = time.monotonic()
    elector.keep_renewing(stop, lost.set)
    try:
        assert lost.wait(deadline + 2), "renewal hung instead of giving up at its deadline"
        took = time.monotonic() - started
        assert deadline <= took < deadline + 1.0, took
    finally:
        stop.set()


def test_a_leader_that_lost_the_lease_stops_reconciling_at_once():
    """The renewal thread halts the controller before kopf winds down (seconds): no pass starts
    after the step-down, while another replica may already lead."""

    async def scenario() -> tuple[list[str], bool]:
        controller = Controller(cast(Any, None), OperatorConfig(workers=2))  # no writer: passes are recorded
        handled: list[str] = []

        async def record(key: Any) -> None:
            handled.append(key)

        controller.reconcile_key = record  # type: ignore[method-assign]
        await controller.start()
        controller.enqueue(("ns", "before"))
        await asyncio.sleep(0.01)
        halting = threading.Thread(target=controller.halt)
        halting.start()
        await asyncio.to_thread(halting.join)
        await asyncio.sleep(0.01)
        controller.enqueue(("ns", "after"))
        await asyncio.sleep(0.01)
        return handled, all(task.done() for task in controller._tasks)

    handled, stopped = asyncio.run(scenario())
    assert handled == [("ns", "before")] and stopped


# ---------------------------------------------------------------------------- /healthz


def wedged() -> Progress:
    return Progress(at=1000.0, waiting=3, oldest_wait_since=800.0, last_done=700.0)


def test_healthz_is_red_while_the_queue_is_wedged_and_green_when_it_moves_or_idles():
    health = Health(queue_stall_seconds=60)
    health.role = "leading"
    health.beat(wedged())
    ok, detail = health.healthy()
    assert not ok and "work queue wedged: 3 key(s) waiting, the oldest for 200 s" in detail, detail
    health.beat(Progress(at=1000.0, waiting=3, oldest_wait_since=800.0, last_done=990.0))  # busy, draining
    assert health.healthy()[0]
    health.beat(Progress(at=1000.0, waiting=0, oldest_wait_since=None, last_done=0.0))  # idle for long
    ok, detail = health.healthy()
    assert ok and detail.startswith("leading, event loop seen"), detail


def test_a_follower_is_healthy_whatever_a_queue_it_does_not_run_says():
    health = Health(queue_stall_seconds=60)
    health.role = "waiting for the lease"
    health.beat(wedged())
    assert health.healthy() == (True, "waiting for the lease")


def test_healthz_answers_503_over_http_for_a_wedged_queue():
    health = Health(queue_stall_seconds=60)
    health.role = "leading"
    port = free_port()
    server = health.serve(port)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            assert response.status == 200
        health.beat(wedged())
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5)
        assert refused.value.code == 503
        assert refused.value.read().decode().startswith("unhealthy: leading")
    finally:
        server.shutdown()
        server.server_close()


# ---------------------------------------------------------------------------- FailedCreate reads


class SlowEvents:
    """A writer whose FailedCreate reads take a while, or find no answer at all."""

    def __init__(self, answer: bool = True) -> None:
        self.answer, self.in_flight, self.most = answer, 0, 0

    async def failed_creates(self, namespace: str, job_uid: str) -> Any:
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            await asyncio.sleep(0.01)
            if not self.answer:
                raise apiclient.ApiUnreachable("GET /api/v1/namespaces/ns/events: TimeoutError")
            return None
        finally:
            self.in_flight -= 1


def test_failed_create_reads_are_bounded_and_one_without_an_answer_fails_no_pass():
    """Thousands of Jobs waiting on a busy Job controller each asked for their events at once:
    the lists timed out, and each timeout's retry asked again two seconds later."""

    async def reads(writer: SlowEvents) -> None:
        controller = Controller(cast(Any, writer), OperatorConfig())
        await asyncio.gather(*(controller._read_failed_creates(("ns", f"j{i}"), FailedCreatesRead("ns", f"j{i}", "u"))
                               for i in range(20)))

    bounded = SlowEvents()
    asyncio.run(reads(bounded))
    assert bounded.most == FAILED_CREATE_READS
    asyncio.run(reads(SlowEvents(answer=False)))  # raises nothing: the pass goes on to its own requeue
