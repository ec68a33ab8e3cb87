"""The operator's runtime limits, without a cluster (the cluster proof is
tests/cluster/test_operator_runtime.py): which children the operator asks the apiserver for, that every
API call and the Lease renewal end in time against an apiserver that never answers (a real TCP
listener that accepts and stays silent, as a paused apiserver does), and what /healthz says."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any, cast

import kopf
import pytest

from tandem._sys.ports import free_port
from tandem.contract import API_GROUP, JOB_NAME_LABEL, PLURAL, VERSION
from tandem.controller import apiclient, leader, timing
from tandem.controller.actions import FailedCreatesRead
from tandem.controller.health import Health
from tandem.controller.informer import streams
from tandem.controller.queue import Progress
from tandem.controller.runtime import FAILED_CREATE_READS, Controller, OperatorConfig, register
from tandem.controller.watching import CHILDREN, TRAINING_JOBS, assert_watches_nothing, operator_settings
from tests.support.kubeconfig import local_kubeconfig


def test_the_time_budget_fits_together():
    timing.check()


# ---------------------------------------------------------------------------- watch scope


@pytest.mark.parametrize("namespaces", [(), ("a", "b")])
def test_children_are_label_selected_by_the_apiserver_and_kopf_watches_nothing(namespaces):
    """Every child stream asks the apiserver for labelled objects only, TrainingJobs are all
    watched (the queries on the wire: test_informer.py); kopf, which runs the lifecycle, is given
    no resource handler, so it opens no watch of its own."""
    found = streams(namespaces)
    assert {(s.watched.kind, s.watched.selector) for s in found} == \
        {("TrainingJob", ""), *((kind, JOB_NAME_LABEL) for kind in ("Job", "Service", "Pod", "NetworkPolicy"))}
    assert {s.namespace for s in found} == (set(namespaces) or {None})
    registry = kopf.OperatorRegistry()
    register(registry, Controller(cast(Any, None), OperatorConfig()))
    assert_watches_nothing(registry)  # the operator's own registry passes
    for resource in [TRAINING_JOBS, *CHILDREN]:
        kopf_resource = kopf.Resource(resource.group, resource.version, resource.plural, kind=resource.kind,
                                      namespaced=True)
        assert not registry._watching.has_handlers(kopf_resource), resource
    settings = operator_settings(bool(namespaces))
    assert settings.scanning.disabled is bool(namespaces)
    assert settings.networking.request_timeout == timing.API_TIMEOUT_SECONDS


@pytest.mark.parametrize("decorate", [
    lambda registry: kopf.on.event(API_GROUP, VERSION, PLURAL, registry=registry),
    lambda registry: kopf.on.update(API_GROUP, VERSION, PLURAL, registry=registry),
    lambda registry: kopf.daemon(API_GROUP, VERSION, PLURAL, registry=registry),
    lambda registry: kopf.index(API_GROUP, VERSION, PLURAL, registry=registry),
], ids=["event", "change", "daemon", "index"])
def test_a_kopf_handler_of_a_resource_is_refused_at_start(decorate):
    """Any resource handler would have kopf watch that kind a second time, at its cost per event."""
    registry = kopf.OperatorRegistry()

    def handler(**_: Any) -> None: ...

    decorate(registry)(handler)
    with pytest.raises(RuntimeError, match="handler"):
        assert_watches_nothing(registry)


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


def test_every_call_of_the_operators_clients_times_out_once_without_retries(silent, tmp_path):
    server = apiclient.endpoint(local_kubeconfig(tmp_path, silent.port))

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
    api = apiclient.SyncApi(apiclient.endpoint(local_kubeconfig(tmp_path, silent.port)))
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
