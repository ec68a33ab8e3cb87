"""The operator's own API client (controller/apiclient.py) on the wire, and the path of every
object the operator creates. Against a real API server the cluster tier runs it (every
tests/cluster test drives the operator); here a local HTTP listener shows what goes out and
how answers and refusals come back, in milliseconds."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tandem.api import TrainingJob
from tandem.contract import OPERATOR_USER_AGENT
from tandem.controller import apiclient
from tandem.controller.writer import KubeWriter, object_path
from tandem.render import render, render_metrics_token
from tests.support.kubeconfig import TOKEN, local_kubeconfig
from tests.support.specs import spec


def test_every_object_the_operator_creates_has_its_resource_path():
    job = TrainingJob.from_dict(spec(tensorboard={"enabled": True, "claimName": "tb-logs"}))
    objects = [*render(job), render_metrics_token(job, "token", "secret-name")]
    paths = {(o["kind"], object_path(o)) for o in objects}
    namespace = objects[0]["metadata"]["namespace"]
    assert paths == {
        ("Service", f"/api/v1/namespaces/{namespace}/services"),
        ("Job", f"/apis/batch/v1/namespaces/{namespace}/jobs"),
        ("NetworkPolicy", f"/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies"),
        ("Deployment", f"/apis/apps/v1/namespaces/{namespace}/deployments"),
        ("Secret", f"/api/v1/namespaces/{namespace}/secrets"),
    }
    assert apiclient.resource_path("tandem.dev/v1", "trainingjobs", "ns", "j", "status") == \
        "/apis/tandem.dev/v1/namespaces/ns/trainingjobs/j/status"


class Recorder(BaseHTTPRequestHandler):
    """Answers each request with the status and body queued for it, and keeps what it got."""

    seen: ClassVar[list[dict[str, Any]]] = []
    answers: ClassVar[list[tuple[int, dict[str, Any]]]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.seen.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                          "body": json.loads(self.rfile.read(length)) if length else None})
        status, body = self.answers.pop(0)
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _answer

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def recorder(tmp_path: Path) -> Iterator[tuple[type[Recorder], str]]:
    Recorder.seen, Recorder.answers = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    kubeconfig = local_kubeconfig(tmp_path, server.server_address[1])
    yield Recorder, kubeconfig
    server.shutdown()
    server.server_close()


def test_a_create_goes_out_as_json_with_the_operators_name_and_credentials(recorder):
    handler, kubeconfig = recorder
    job = render(TrainingJob.from_dict(spec()))[1]
    handler.answers = [(201, {**job, "metadata": {**job["metadata"], "uid": "u-1"}})]

    async def create() -> Any:
        writer = KubeWriter(apiclient.AsyncApi(apiclient.endpoint(kubeconfig)))
        try:
            return await writer.create(job)
        finally:
            await writer.close()

    result = asyncio.run(create())
    assert result.obj is not None and result.obj["metadata"]["uid"] == "u-1"
    [request] = handler.seen
    assert request["method"] == "POST"
    assert request["path"] == f"{object_path(job)}?fieldManager=tandem-operator"
    assert request["body"] == job
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert headers["user-agent"] == OPERATOR_USER_AGENT  # how the audit log (and bench B3) tells our calls apart
    assert headers["authorization"] == f"Bearer {TOKEN}"
    assert headers["content-type"] == "application/json"


def test_a_refusal_keeps_the_servers_reason_and_message(recorder):
    handler, kubeconfig = recorder
    job = render(TrainingJob.from_dict(spec()))[1]
    status = {"kind": "Status", "reason": "Forbidden", "message": "exceeded quota: compute, requested: pods=2"}
    handler.answers = [(403, status), (409, {"kind": "Status", "reason": "Conflict"})]

    async def calls() -> tuple[Any, BaseException]:
        writer = KubeWriter(apiclient.AsyncApi(apiclient.endpoint(kubeconfig)))
        try:
            refused = await writer.create(job)
            with pytest.raises(apiclient.ApiError) as conflict:
                await writer.resize_job("ns", "j", 3)
            return refused, conflict.value
        finally:
            await writer.close()

    refused, conflict = asyncio.run(calls())
    assert (refused.obj, refused.reason, refused.message) == (None, "Forbidden", status["message"])
    assert isinstance(conflict, apiclient.ApiError) and conflict.status == 409
    patch = handler.seen[1]
    assert patch["method"] == "PATCH" and patch["body"] == {"spec": {"parallelism": 3, "completions": 3}}
    assert {k.lower(): v for k, v in patch["headers"].items()}["content-type"] == apiclient.MERGE_PATCH


def test_a_closed_client_makes_no_call(recorder):
    _, kubeconfig = recorder

    async def after_close() -> None:
        api = apiclient.AsyncApi(apiclient.endpoint(kubeconfig))
        await api.close()
        await api.call("GET", "/api/v1/namespaces/default")

    with pytest.raises(apiclient.ApiUnreachable, match="closed"):
        asyncio.run(after_close())
