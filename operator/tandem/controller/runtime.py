"""The operator runtime: kopf watches feed a cache and a work queue; workers run the pure
reconcile and carry out its actions through the API.

kopf gives us resumable watches (they survive an API server restart), the liveness endpoint,
and logging. We use only its event handlers (no on.create/on.update), so it stores nothing in
the objects: the state that matters lives in status and in the children, and reconcile is
level-triggered. One active replica is ensured by a coordination.k8s.io Lease (leader.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Coroutine, Optional

import kopf
from kubernetes.client.rest import ApiException

from ..contract import API_GROUP, JOB_NAME_LABEL, PLURAL, VERSION
from . import telemetry
from .actions import MetricsRead
from .cache import Cache, Key
from .health import Health
from .kube import KubeWriter
from .observed import observe
from .policy.metrics import with_metrics
from .reconcile import reconcile

if TYPE_CHECKING:
    from .queue import WorkQueue

log = logging.getLogger("tandem.operator")
WORKERS = 4
METRICS_READ_TIMEOUT = 5.0
HEARTBEAT_SECONDS = 5.0


@dataclass
class OperatorConfig:
    metrics_address: str = ""
    workers: int = WORKERS


class Controller:
    def __init__(self, writer: KubeWriter, config: OperatorConfig, health: Optional[Health] = None):
        self.writer = writer
        self.config = config
        self.health = health
        self.cache = Cache()
        self.queue: Optional[WorkQueue[Key]] = None
        self._tasks: list[asyncio.Task[Any]] = []

    async def start(self) -> None:
        from .queue import WorkQueue

        self.queue = WorkQueue[Key]()
        # Kept: the event loop holds only weak references to tasks, so an unreferenced one can vanish.
        self._tasks = [asyncio.create_task(self.queue.run_worker(self.reconcile_key))
                       for _ in range(self.config.workers)]
        if self.health is not None:
            self._tasks.append(asyncio.create_task(self._heartbeat(self.health)))

    async def _heartbeat(self, health: Health) -> None:
        """Proves to /healthz that the event loop still runs."""
        while True:
            health.beat()
            await asyncio.sleep(HEARTBEAT_SECONDS)

    def enqueue(self, key: Optional[Key]) -> None:
        if key is not None and self.queue is not None:
            self.queue.add(key)

    async def reconcile_key(self, key: Key) -> None:
        assert self.queue is not None  # called by the queue's workers only
        started = time.perf_counter()
        result = "ok"
        try:
            await self._reconcile(key)
        except ApiException as error:
            result = "api-error"
            log.warning("reconcile %s/%s: API error %s %s; retrying", *key, error.status, error.reason)
            self.queue.add_after(key, 2.0)
        except Exception:  # a bug must cost one job a retry, never the whole loop
            result = "error"
            log.exception("reconcile %s/%s failed; retrying", *key)
            self.queue.add_after(key, 5.0)
        finally:
            telemetry.observe_reconcile(result, time.perf_counter() - started)

    async def _reconcile(self, key: Key) -> None:
        obj = self.cache.training_jobs.get(key)
        if obj is None:
            return
        observed = observe(self.cache.services.get(key), self.cache.jobs.get(key),
                           list(self.cache.pods.get(key, {}).values()), self.cache.network_policies.get(key))
        now = datetime.now(timezone.utc)
        actions = reconcile(obj, observed, now, self.config.metrics_address)
        namespace, name = key
        status = actions.status or None
        if actions.read_metrics is not None:
            status = await self._with_metrics(actions.read_metrics, now)
        if status is not None:
            updated = await self._patch_status(key, status, actions.read_metrics, now)
            if updated is None:
                return
            self.cache.put_training_job(updated)
        if actions.delete_training_job is not None:
            target = actions.delete_training_job
            await asyncio.to_thread(self.writer.delete_training_job, target.namespace, target.name)
            return
        if actions.delete_job is not None:
            target = actions.delete_job
            await asyncio.to_thread(self.writer.delete_job, target.namespace, target.name)
        for child in actions.apply:
            applied = await asyncio.to_thread(self.writer.apply, child)
            self.cache.put_child(child["kind"], applied)
        for event in actions.events:
            log.info("%s/%s: %s: %s", namespace, name, event.reason, event.message)
            await asyncio.to_thread(self.writer.post_event, obj, event)
        if status is not None and status.get("phase"):
            telemetry.set_phase(key, status["phase"])
        if actions.requeue_after is not None:
            assert self.queue is not None  # reconciling only once started
            self.queue.add_after(key, actions.requeue_after)

    async def _patch_status(self, key: Key, status: dict[str, Any], read: Optional[MetricsRead],
                            now: datetime) -> Optional[dict[str, Any]]:
        """Write the pass's status. Should the API server refuse a patch that carries fresh figures,
        write it again without them (MetricsAvailable False, the server's reason): a figure must
        never keep the phase and conditions from being written."""
        try:
            return await asyncio.to_thread(self.writer.patch_status, *key, status)
        except ApiException as error:
            if read is None or error.status not in (400, 422):
                raise
            log.warning("status of %s/%s refused with its figures (%s); writing it without them", *key, error.reason)
            refused = f"the API server refused the figures: {error.status} {error.reason}"[:300]
            return await asyncio.to_thread(self.writer.patch_status, *key,
                                           with_metrics(read.status, None, now, read.generation, refused))

    def forget_metrics(self, key: Key) -> None:
        """Drop a deleted job's metrics actor, so a new job of the same name starts clean."""
        if not self.config.metrics_address:
            return

        async def delete() -> None:
            try:
                from ..metrics.client import delete as delete_collector

                await asyncio.wait_for(asyncio.to_thread(delete_collector, self.config.metrics_address, *key),
                                       METRICS_READ_TIMEOUT)
            except Exception as error:  # noqa: BLE001 - best effort: the actor is small and detached
                log.info("could not remove the metrics actor of %s/%s: %s", *key, error)

        asyncio.get_running_loop().create_task(delete())

    async def _with_metrics(self, read: MetricsRead, now: datetime) -> dict[str, Any]:
        """The pass's status with fresh figures, or MetricsAvailable False and why: never raises."""
        if not self.config.metrics_address:
            return with_metrics(read.status, None, now, read.generation,
                                "the operator has no --metrics-address (Ray) configured")
        try:
            from ..metrics.client import read_summary

            summary = await asyncio.wait_for(asyncio.to_thread(
                read_summary, self.config.metrics_address, read.namespace, read.name,
                read.workers, read.baseline_throughput, read.straggler_threshold,
            ), METRICS_READ_TIMEOUT)
        except Exception as error:  # noqa: BLE001 - Ray absent or broken: say so in a condition, go on
            return with_metrics(read.status, None, now, read.generation, f"metrics unavailable: {error}"[:300])
        if not summary.available:
            return with_metrics(read.status, None, now, read.generation, (summary.reason or "")[:300])
        figures = summary.model_dump(by_alias=True, exclude_none=True, mode="json")
        return with_metrics(read.status, figures, now, read.generation)


def register(registry: kopf.OperatorRegistry, controller: Controller) -> None:
    """Event handlers only: every change to a TrainingJob or a child enqueues its job."""

    @kopf.on.startup(registry=registry)
    async def _startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.posting.level = logging.WARNING
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330
        settings.networking.request_timeout = 30
        await controller.start()

    @kopf.on.event(API_GROUP, VERSION, PLURAL, registry=registry)
    async def _training_job(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
        deleted = event.get("type") == "DELETED"
        key = controller.cache.put_training_job(body, deleted=deleted)
        if deleted:
            telemetry.forget(key)
            controller.forget_metrics(key)
        else:
            controller.enqueue(key)

    def child_handler(kind: str) -> Callable[..., Coroutine[Any, Any, None]]:
        async def handler(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
            controller.enqueue(controller.cache.put_child(kind, body, deleted=event.get("type") == "DELETED"))
        return handler

    labels = {JOB_NAME_LABEL: kopf.PRESENT}
    kopf.on.event("batch", "v1", "jobs", labels=labels, registry=registry)(child_handler("Job"))
    kopf.on.event("", "v1", "services", labels=labels, registry=registry)(child_handler("Service"))
    kopf.on.event("", "v1", "pods", labels=labels, registry=registry)(child_handler("Pod"))
    kopf.on.event("networking.k8s.io", "v1", "networkpolicies", labels=labels,
                  registry=registry)(child_handler("NetworkPolicy"))
