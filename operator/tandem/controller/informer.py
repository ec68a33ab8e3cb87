"""The operator's list+watch of its TrainingJobs and their children, straight into the cache and the work queue.

kopf handled every watch event with its own machinery (a worker task and queue per object, a
Body wrapper, a logging context, settings lookups) before the operator's handler saw it.
Measured beside the operator (bench B3), merely reading and decoding all of a job's events (about
14) costs a Python process 2.7 ms of CPU, while the operator spent 23 ms a job; with the
children's watches moved here (about 10 of the 14 events) it spent 12. Here an event is one
orjson decode and one cache update, which is all the handler kopf called did. kopf runs the
operator's lifecycle only (watching.py).

The protocol is client-go's reflector's:

- list the kind (children selected by the apiserver: `Watched.selector`), in pages of
  LIST_PAGE_SIZE; deliver each object, and deliver as deleted each object delivered before and
  absent now: a relist after a gap must not leave a deleted Pod in the cache for ever (kopf's
  relist did not do this);
- watch from the list's resourceVersion, with bookmarks; when the apiserver ends the stream
  (WATCH_SERVER_TIMEOUT_SECONDS), watch again from the last resourceVersion seen;
- 410 Gone (the answer's status or an ERROR event): that version is compacted away, list again;
- any other failure (no answer, a refusal such as 403 while RBAC is being fixed, 429): wait,
  doubling from RETRY_FIRST_SECONDS to RETRY_MOST_SECONDS, then watch again from where it was.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

import orjson

from ..contract import JOB_NAME_LABEL
from .apiclient import ApiError, ApiUnreachable, AsyncApi, resource_path
from .timing import WATCH_CLIENT_TIMEOUT_SECONDS, WATCH_SERVER_TIMEOUT_SECONDS
from .watching import CHILDREN, LIST_PAGE_SIZE, TRAINING_JOBS, Watched

log = logging.getLogger("tandem.operator")
#: What receives each object: its kind, the object, and whether it was deleted.
Deliver = Callable[[str, dict[str, Any], bool], None]
#: The first pause after a failed list or watch, and the longest (client-go's reflector backs
#: off from 800 ms to 30 s).
RETRY_FIRST_SECONDS = 0.8
RETRY_MOST_SECONDS = 30.0
#: A watch that ends sooner than this with no event is a failure, paused after like one (client-go's
#: "very short watch"): a proxy that closes streams at once must not make the operator spin.
SHORT_WATCH_SECONDS = 1.0
#: An object's place in a stream: (namespace, name).
Place = tuple[str, str]
#: What a deletion found by a relist needs of an object that is gone: its job label and uid.
Kept = tuple[str, str]


class Gone(Exception):
    """The resourceVersion asked for is older than the apiserver's history: list again."""


@dataclass(frozen=True)
class Stream:
    """One list+watch: a kind, cluster-wide (namespace None) or in one namespace."""

    watched: Watched
    namespace: Optional[str] = None

    @property
    def path(self) -> str:
        return resource_path(self.watched.api_version, self.watched.plural, self.namespace)

    def query(self, **more: str) -> dict[str, str]:
        return {**({"labelSelector": self.watched.selector} if self.watched.selector else {}), **more}

    def __str__(self) -> str:
        return f"{self.watched.plural} in {self.namespace}" if self.namespace else f"{self.watched.plural} (all namespaces)"


def streams(namespaces: tuple[str, ...]) -> list[Stream]:
    """The operator's streams: TrainingJobs and every child kind, cluster-wide or in each namespace it is given."""
    return [Stream(watched, namespace) for watched in (TRAINING_JOBS, *CHILDREN) for namespace in (namespaces or (None,))]


def _deleted_stub(place: Place, kept: Kept) -> dict[str, Any]:
    """What a deletion found by a relist delivers: the object itself is gone; the cache finds it
    by name and job label (a failed pod's last state is still there), and its uid names the
    figures' collector of a deleted TrainingJob."""
    job, uid = kept
    return {"metadata": {"namespace": place[0], "name": place[1], "uid": uid, "labels": {JOB_NAME_LABEL: job}}}


class Watch:
    """One stream's list+watch, run until cancelled. It remembers each delivered object's place,
    job label and uid (not the object: the cache holds what is needed), to find deletions on a
    relist."""

    def __init__(self, api: AsyncApi, stream: Stream, deliver: Deliver):
        self.api, self.stream, self.deliver = api, stream, deliver
        self.kind = stream.watched.kind
        self._known: dict[Place, Kept] = {}

    async def run(self) -> None:
        """List and watch until cancelled. Nothing but cancellation ends it: a stream that stopped
        on an error would leave the operator blind to its kind without a word."""
        version: Optional[str] = None
        pause = RETRY_FIRST_SECONDS
        while True:
            try:
                if version is None:
                    version = await self.relist()
                started = time.monotonic()
                watched_from, version = version, await self.watch(version)
                if version == watched_from and time.monotonic() - started < SHORT_WATCH_SECONDS:
                    raise ApiUnreachable("the watch ended at once with no event")  # do not spin on it
                pause = RETRY_FIRST_SECONDS
            except Gone:
                log.info("watching %s: resourceVersion %s is gone; listing again", self.stream, version)
                version = None
            except (ApiError, ApiUnreachable) as error:
                log.warning("watching %s: %s; again in %.1f s", self.stream, error, pause)
                await asyncio.sleep(pause)
                pause = min(2 * pause, RETRY_MOST_SECONDS)
            except Exception:  # a bug must cost a relist, never the watch
                log.exception("watching %s failed; listing again in %.1f s", self.stream, pause)
                version = None
                await asyncio.sleep(pause)
                pause = min(2 * pause, RETRY_MOST_SECONDS)

    async def relist(self) -> str:
        """Deliver every object of the stream, and the deletion of each known one that is gone;
        the list's resourceVersion, to watch from."""
        query = self.stream.query(limit=str(LIST_PAGE_SIZE))
        listed: dict[Place, Kept] = {}
        while True:
            try:
                page = await self.api.call("GET", self.stream.path, query=query)
            except ApiError as error:
                if error.status == 410:  # a page's continue token expired: start over
                    raise Gone() from error
                raise
            for item in page.get("items") or []:
                # A list's items carry no kind or apiVersion; the cache and its readers expect them.
                item.setdefault("apiVersion", self.stream.watched.api_version)
                item.setdefault("kind", self.kind)
                listed[self._place(item)] = self._kept(item)
                self.deliver(self.kind, item, False)
            metadata = page.get("metadata") or {}
            if not metadata.get("continue"):
                break
            query = {**query, "continue": metadata["continue"]}
        for place in self._known.keys() - listed.keys():
            self.deliver(self.kind, _deleted_stub(place, self._known[place]), True)
        self._known = listed
        return str(metadata.get("resourceVersion") or "")

    async def watch(self, version: str) -> str:
        """Deliver each event from `version` on, until the apiserver ends the stream; the last
        resourceVersion seen, to watch on from."""
        query = self.stream.query(watch="true", resourceVersion=version, allowWatchBookmarks="true",
                                  timeoutSeconds=str(WATCH_SERVER_TIMEOUT_SECONDS))
        try:
            async for line in self.api.lines(self.stream.path, query, WATCH_CLIENT_TIMEOUT_SECONDS):
                version = self.event(orjson.loads(line)) or version
        except ApiError as error:
            if error.status == 410:
                raise Gone() from error
            raise
        return version

    def event(self, event: dict[str, Any]) -> Optional[str]:
        """Handle one watch event; its resourceVersion, if it carries one."""
        happened, obj = event.get("type"), event.get("object") or {}
        if happened == "ERROR":
            code = int(obj.get("code") or 500)
            if code == 410:
                raise Gone()
            raise ApiError(code, str(obj.get("reason") or ""), orjson.dumps(obj).decode())
        if happened in ("ADDED", "MODIFIED", "DELETED"):
            place = self._place(obj)
            if happened == "DELETED":
                self._known.pop(place, None)
            else:
                self._known[place] = self._kept(obj)
            self.deliver(self.kind, obj, happened == "DELETED")
        return (obj.get("metadata") or {}).get("resourceVersion")

    @staticmethod
    def _place(obj: dict[str, Any]) -> Place:
        metadata = obj["metadata"]
        return metadata.get("namespace", ""), metadata["name"]

    @staticmethod
    def _kept(obj: dict[str, Any]) -> Kept:
        metadata = obj["metadata"]
        return str((metadata.get("labels") or {}).get(JOB_NAME_LABEL, "")), str(metadata.get("uid") or "")
