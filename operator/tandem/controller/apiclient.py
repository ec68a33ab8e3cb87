"""The operator's Kubernetes API client: JSON over HTTP(S), dicts in and dicts out.

The operator makes a dozen kinds of call, each with a dict it already holds (a rendered child,
a status, a Lease). The official client's generated API methods wrap every call in pydantic's
`validate_call`: the first call of a method builds its validator (78 MB of native memory for
`list_namespaced_pod` alone, measured), and every call validates its arguments, serialises
models and parses the answer into model objects, which the operator then turned back into
dicts. That was most of the idle operator's resident memory and a large share of its CPU per
job (bench B3). Here a call is one HTTP request:

- `AsyncApi` (aiohttp, the transport kopf's watches already use) for the reconcile workers: the
  call runs on the event loop, without a thread hop (a pool submit and a loop wake-up) per call;
- `SyncApi` (urllib3) for the Lease renewal, which runs in its own thread so that it keeps time
  however busy the loop is.

Credentials come from the official client's config loader (kubeconfig with certificates, a
token or an exec plugin; or the service account, whose token it re-reads as it rotates), the
same loader kopf's login uses: only the client's API classes are left out. Every call ends
within its timeout and is never retried here; the work queue and the renewal loop retry with
their own pacing. JSON goes through orjson: the operator decodes every answer and every watch
event (informer.py).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

import aiohttp
import orjson
import urllib3

from ..contract import OPERATOR_USER_AGENT
from ..kubeapi import connect
from .timing import API_TIMEOUT_SECONDS

#: Connections each client keeps open: the reconcile workers' calls (and the event posts beside
#: them) run at once; fewer would open and drop a connection per call beyond the pool.
POOLED_CONNECTIONS = 32
JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"


class ApiError(Exception):
    """The API server answered with an error status; `body` is its Status object's JSON text."""

    def __init__(self, status: int, reason: str, body: str = ""):
        super().__init__(f"{status} {reason}")
        self.status, self.reason, self.body = status, reason, body


class ApiUnreachable(Exception):
    """No answer: the connection failed, or the call outlived its timeout."""


@dataclass(frozen=True)
class Endpoint:
    """Where the API server is and how to speak to it."""

    server: str
    #: None for plain http (tests' local servers).
    ssl_context: Optional[ssl.SSLContext]
    #: The Authorization header's value now (a service account's token rotates), or None.
    authorization: Callable[[], Optional[str]]
    server_hostname: Optional[str] = None

    def headers(self, content_type: str) -> dict[str, str]:
        headers = {"Accept": JSON, "Content-Type": content_type, "User-Agent": OPERATOR_USER_AGENT}
        value = self.authorization()
        if value:
            headers["Authorization"] = value
        return headers


def endpoint(kubeconfig: Optional[str] = None) -> Endpoint:
    """In a pod: the service account; elsewhere: the kubeconfig (KUBECONFIG or ~/.kube/config)."""
    configuration = connect(kubeconfig).api.configuration

    def authorization() -> Optional[str]:
        # Since client 36.0.1 a bearer token is kept under "BearerToken"; the loader's refresh
        # hook (a service account's rotating token, an exec plugin's) runs inside this call.
        value = configuration.get_api_key_with_prefix("BearerToken") or \
            configuration.get_api_key_with_prefix("authorization")
        return str(value) if value else None

    context = None
    if configuration.host.startswith("https:"):
        context = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
        if configuration.cert_file:
            context.load_cert_chain(configuration.cert_file, configuration.key_file)
        if not configuration.verify_ssl:
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    return Endpoint(configuration.host.rstrip("/"), context, authorization,
                    getattr(configuration, "tls_server_name", None) or None)


def resource_path(api_version: str, plural: str, namespace: Optional[str], name: str = "", subresource: str = "") -> str:
    """The URL path of a namespaced resource (its collection without `name`; with namespace None,
    the collection across all namespaces, as a cluster-wide watch reads it)."""
    root = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    where = [] if namespace is None else ["namespaces", namespace]
    return "/".join([root, *where, plural, *(part for part in (name, subresource) if part)])


def _answer(status: int, reason: str, data: bytes) -> Any:
    if status >= 400:
        raise ApiError(status, reason, data.decode("utf-8", "replace"))
    return orjson.loads(data) if data else None


class AsyncApi:
    """The reconcile workers' client (and, as a second instance, the watches': each watch holds
    its connection open, so they must not take the workers' pool), on the event loop. Its
    session is made at the first call, inside the running loop, as aiohttp requires; once
    closed, it stays closed. `connections` 0: as many as are asked for at once."""

    def __init__(self, endpoint: Endpoint, timeout: float = API_TIMEOUT_SECONDS,
                 connections: int = POOLED_CONNECTIONS):
        self.endpoint = endpoint
        self.timeout = timeout
        self.connections = connections
        self._session: Optional[aiohttp.ClientSession] = None
        self._closed = False

    def _open(self) -> aiohttp.ClientSession:
        if self._closed:
            raise ApiUnreachable("the operator's API client is closed: the operator is stopping")
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self.connections, ssl=self.endpoint.ssl_context or False)
            self._session = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=self.timeout))
        return self._session

    async def call(self, method: str, path: str, *, query: Optional[Mapping[str, str]] = None,
                   body: Any = None, content_type: str = JSON) -> Any:
        """The answer's JSON (None for an empty one); raises ApiError or ApiUnreachable."""
        data = None if body is None else orjson.dumps(body)
        try:
            async with self._open().request(method, self.endpoint.server + path, params=query, data=data,
                                            headers=self.endpoint.headers(content_type),
                                            server_hostname=self.endpoint.server_hostname) as response:
                status, reason, answer = response.status, response.reason or "", await response.read()
        except (aiohttp.ClientError, asyncio.TimeoutError) as error:
            raise ApiUnreachable(f"{method} {path}: {str(error) or type(error).__name__}") from error
        return _answer(status, reason, answer)

    async def lines(self, path: str, query: Mapping[str, str], timeout: float) -> AsyncIterator[bytes]:
        """Each whole line of a streamed answer (a watch: one JSON event a line), as it comes; the whole
        stream ends within `timeout`. Lines are split here rather than by aiohttp's line reader,
        which refuses a line over 128 kB (a Job or Pod can be larger). Raises ApiError for an
        error status, ApiUnreachable when the connection fails or the time is up."""
        try:
            async with self._open().get(self.endpoint.server + path, params=query, headers=self.endpoint.headers(JSON),
                                        server_hostname=self.endpoint.server_hostname,
                                        timeout=aiohttp.ClientTimeout(total=timeout,
                                                                      sock_connect=self.timeout)) as response:
                if response.status >= 400:
                    _answer(response.status, response.reason or "", await response.read())
                buffer = b""
                async for data in response.content.iter_any():
                    buffer += data
                    *complete, buffer = buffer.split(b"\n")
                    for line in complete:
                        if line:
                            yield line
                # What is left after the last newline is a line the stream cut short: not yielded.
        except (aiohttp.ClientError, asyncio.TimeoutError) as error:
            raise ApiUnreachable(f"GET {path} (stream): {str(error) or type(error).__name__}") from error

    async def close(self) -> None:
        self._closed = True
        if self._session is not None:
            await self._session.close()


class SyncApi:
    """The Lease renewal's client, for its own thread; each call takes its own timeout."""

    def __init__(self, endpoint: Endpoint):
        self.endpoint = endpoint
        self._pool = urllib3.PoolManager(maxsize=2, retries=False, ssl_context=endpoint.ssl_context,
                                         server_hostname=endpoint.server_hostname)

    def call(self, method: str, path: str, *, body: Any = None, timeout: float = API_TIMEOUT_SECONDS) -> Any:
        """The answer's JSON (None for an empty one); raises ApiError or ApiUnreachable."""
        data = None if body is None else orjson.dumps(body)
        try:
            response = self._pool.request(method, self.endpoint.server + path, body=data,
                                          headers=self.endpoint.headers(JSON), timeout=timeout)
        except urllib3.exceptions.HTTPError as error:
            raise ApiUnreachable(f"{method} {path}: {error}") from error
        return _answer(response.status, response.reason or "", response.data)
