"""A real figures path for tests: the private Ray of `tandem run` with its figures gateway, as
the metrics helper starts them (local/figures_service.py), reachable on loopback."""

from __future__ import annotations

import contextlib
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator, Optional

from tandem.local.figures_service import LocalMetrics
from tandem.metrics.shipper import reachable
from tests.support.waiting import wait_for


@contextlib.contextmanager
def figures_gateway(directory: Path) -> Iterator[LocalMetrics]:
    """LocalMetrics up (Ray and its gateway); `.address` is the gateway's URL, `.key` its key
    (hex text; the key's bytes are its encoding), `.key_file` a file holding it."""
    metrics = LocalMetrics("unused", "unused", workers=2, baseline=None, straggler_threshold=0.8)
    metrics.start(directory)
    try:
        wait_for("Ray", lambda: reachable(f"127.0.0.1:{metrics.port}", timeout=1.0), timeout=180, interval=1)
        wait_for("Ray and its gateway", lambda: metrics.state == "waiting for the first steps", timeout=180, interval=1)
        metrics.key_file = directory / "metrics-key"  # type: ignore[attr-defined]
        metrics.key_file.write_text(metrics.key)  # type: ignore[attr-defined]
        yield metrics
    finally:
        metrics.stop()


def post_oversize(base: str, path: str, bearer: str, length: int) -> int:
    """The gateway's answer to a POST that declares a `length`-byte body, sent headers first: a
    refusal comes before the body is read (sending it all would only meet a closed socket)."""
    import http.client
    from urllib.parse import urlparse

    parsed = urlparse(base)
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=10)
    try:
        connection.putrequest("POST", path)
        connection.putheader("Authorization", f"Bearer {bearer}")
        connection.putheader("Content-Length", str(length))
        connection.endheaders()
        return connection.getresponse().status
    finally:
        connection.close()


def request(method: str, url: str, bearer: Optional[str] = None, data: Optional[bytes] = None,
            headers: Optional[dict[str, str]] = None, timeout: float = 10.0) -> tuple[int, bytes]:
    """(status, body) of one HTTP request to the gateway; a refusal is an answer, not an error."""
    message = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if bearer is not None:
        message.add_header("Authorization", f"Bearer {bearer}")
    try:
        with urllib.request.urlopen(message, timeout=timeout) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
