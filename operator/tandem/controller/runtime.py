"""The operator runtime: watches feed a cache and a work queue; workers run the pure
reconcile and carry out its actions through the API.

The watches are the operator's own (informer.py), for their cost per event; kopf runs the
operator's lifecycle (start-up, clean-up, signals, the stop flag) and watches nothing. Of kopf
we use only activity handlers (no on.create/on.update), so it stores nothing in
the objects: the state that matters lives in status and in the children, and reconcile is
level-triggered. One active replica is ensured by a coordination.k8s.io Lease (leader.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Optional

import kopf

from ..api.admin_policy import AdminPolicy
from ..contract import KIND
from ..figures.token import reader_token
from . import telemetry
from .actions import NO_METRICS, Event, FailedCreatesRead, MetricsChannel, MetricsRead, WorkloadRead
from .apiclient import ApiError, ApiUnreachable, AsyncApi
from .cache import Cache, Key
from .health import Health
from .informer import Watch, streams
from .observed import FAILED_CREATE, Refusal, observe
from .policy.metrics import with_metrics, with_recoveries, with_world
from .reconcile import reconcile
from .timing import HEARTBEAT_SECONDS, IMAGE_PULL_GRACE_SECONDS
from .writer import NAMESPACE_TERMINATING, KubeWriter

if TYPE_CHECKING:
    from .queue import WorkQueue

log = logging.getLogger("tandem.operator")
#: Reconciles at once. Each spends most of its time waiting on API round trips, not on the CPU:
#: at 1,000 jobs, 4 workers left the operator mostly idle while jobs queued (bench B3).
WORKERS = 16


def blocking_threads(workers: int) -> int:
    """Threads for the blocking calls left (asyncio.to_thread): the figures reads, one per worker
    at most, and kopf's own stop-flag waiter, with one to spare. asyncio's default pool has only
    min(32, cores + 4) threads, fewer than the workers on a small node. API calls need none:
    they run on the loop."""
    return workers + 2


API_THREADS = blocking_threads(WORKERS)
METRICS_READ_TIMEOUT = 5.0
#: FailedCreate reads in flight at once, over all jobs. Each lists a namespace's events, which the
#: API server filters by scanning them all: with thousands of Jobs waiting on a busy Job
#: controller, unbounded reads timed out and slowed the API server for everyone (bench B3 at
#: 10,000 jobs). The reads are a diagnosis (why are pods missing?), not on any job's path.
FAILED_CREATE_READS = 2


@dataclass
class OperatorConfig:
    #: The figures gateway (http://host:port) and the key its tokens derive from.
    metrics: MetricsChannel = NO_METRICS
    workers: int = WORKERS
    admin_policy: AdminPolicy = field(default_factory=AdminPolicy)
    #: How long a failing image pull is retried before its job fails (policy/unstartable.py).
    image_pull_grace_seconds: float = IMAGE_PULL_GRACE_SECONDS
    #: The namespaces watched; () for all.
    namespaces: tuple[str, ...] = ()


class Controller:
    def __init__(self, writer: KubeWriter, config: OperatorConfig, health: Optional[Health] = None,
                 watch_api: Optional[AsyncApi] = None):
        self.writer = writer
        self.config = config
        self.health = health
        #: The watches' client (None: nothing is watched, as in tests of a pass).
        self.watch_api = watch_api
        self.cache = Cache()
        self.queue: Optional[WorkQueue[Key]] = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._events: set[asyncio.Task[Any]] = set()
        self._failed_create_reads = asyncio.Semaphore(FAILED_CREATE_READS)
        self._loop: Optional[asyncio.AbstractEventLoop] = None

    async def start(self) -> None:
        from .queue import WorkQueue

        self._loop = asyncio.get_running_loop()
        self._loop.set_default_executor(ThreadPoolExecutor(blocking_threads(max(WORKERS, self.config.workers)),
                                                           thread_name_prefix="tandem-api"))
        self.queue = WorkQueue[Key]()
        # Kept: the event loop holds only weak references to tasks, so an unreferenced one can vanish.
        self._tasks = [asyncio.create_task(self.queue.run_worker(self.reconcile_key))
                       for _ in range(self.config.workers)]
        if self.health is not None:
            self._tasks.append(asyncio.create_task(self._heartbeat(self.health)))
        if self.watch_api is not None:
            self._tasks += [asyncio.create_task(Watch(self.watch_api, stream, self.on_event).run())
                            for stream in streams(self.config.namespaces)]

    def halt(self) -> None:
        """Stop reconciling now; callable from any thread (the Lease renewal's calls it).

        A leader that lost the Lease must not act while kopf winds down (seconds), since another
        replica may lead once the lease expires. Cancelled workers start no new call, and a call
        in flight is abandoned with its task."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._cancel_tasks)
            log.warning("stopped reconciling")

    async def stop(self) -> None:
        """Stop reconciling, wait for the passes and event posts in flight to end, close the client."""
        tasks = [*self._tasks, *self._events]
        self._cancel_tasks()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.writer.close()
        if self.watch_api is not None:
            await self.watch_api.close()

    def _cancel_tasks(self) -> None:
        for task in [*self._tasks, *self._events]:
            task.cancel()

    async def _heartbeat(self, health: Health) -> None:
        """Proves to /healthz that the event loop still runs, and shows it the queue's progress."""
        assert self.queue is not None  # started before this task
        while True:
            health.beat(self.queue.progress())
            await asyncio.sleep(HEARTBEAT_SECONDS)

    def enqueue(self, key: Optional[Key]) -> None:
        if key is not None and self.queue is not None:
            self.queue.add(key)

    def on_event(self, kind: str, obj: dict[str, Any], deleted: bool) -> None:
        """A watch event (informer.py): cache the object and bring its job's next pass; a deleted
        TrainingJob's telemetry and figures' collector are let go instead."""
        if kind != KIND:
            self.enqueue(self.cache.put_child(kind, obj, deleted=deleted))
            return
        key = self.cache.put_training_job(obj, deleted=deleted)
        if deleted:
            telemetry.forget(key)
            self.forget_metrics(key, str((obj.get("metadata") or {}).get("uid") or ""))
        else:
            self.enqueue(key)

    async def reconcile_key(self, key: Key) -> None:
        assert self.queue is not None  # called by the queue's workers only
        started = time.perf_counter()
        result = "ok"
        try:
            await self._reconcile(key)
        except ApiError as error:
            result = "api-error"
            log.warning("reconcile %s/%s: API error %s %s; retrying", *key, error.status, error.reason)
            self.queue.add_after(key, 2.0)
        except ApiUnreachable as error:  # no answer, or none within timing.API_TIMEOUT_SECONDS
            result = "api-error"
            log.warning("reconcile %s/%s: %s; retrying", *key, error)
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
        observed = observe(obj.get("metadata", {}).get("uid", ""), self.cache.services.get(key),
                           self.cache.jobs.get(key), self.cache.pods_of(key),
                           self.cache.refusals.get(key, {}).values(),
                           self.cache.network_policies.get(key), self.cache.workloads.get(key),
                           self.cache.listed_pods.get(key))
        now = datetime.now(timezone.utc)
        actions = reconcile(obj, observed, now, self.config.metrics, self.config.admin_policy,
                            self.config.image_pull_grace_seconds)
        namespace, name = key
        status = actions.status or None
        events = list(actions.events)
        if actions.read_metrics is not None:
            status, told = await self._with_metrics(actions.read_metrics, now)
            events += told
        if status is not None:
            updated = await self._patch_status(key, status, actions.read_metrics, now)
            if updated is None:
                return
            self.cache.put_training_job(updated)
        if actions.delete_training_job is not None:
            target = actions.delete_training_job
            await self.writer.delete_training_job(target.namespace, target.name)
            return
        if actions.delete_job is not None:
            target = actions.delete_job
            await self.writer.delete_job(target.namespace, target.name)
        for secret in actions.secrets:
            await self.writer.create_once(secret)
        if not await self._create(key, actions.create):
            self.enqueue(key)  # the next pass reports the refusal (and schedules its retry)
        if actions.resize_job is not None:
            resize = actions.resize_job
            await self.writer.resize_job(resize.namespace, resize.name, resize.workers)
        for child in actions.restore:
            self.cache.put_child(child["kind"], await self.writer.restore_spec(child))
        if actions.read_failed_creates is not None:
            await self._read_failed_creates(key, actions.read_failed_creates)
        if actions.read_workload is not None:
            await self._read_workload(key, actions.read_workload)
        else:
            self.cache.workloads.pop(key, None)  # admitted or gone: the next wait reads afresh
        if actions.read_pods is not None:
            read = actions.read_pods
            self.cache.listed(key, read.job_uid, await self.writer.job_pods(read.namespace, read.name))
        for event in events:
            log.info("%s/%s: %s: %s", namespace, name, event.reason, event.message)
            self._post_event(obj, event)
        if status is not None and status.get("phase"):
            telemetry.set_phase(key, status["phase"])
        if actions.requeue_after is not None:
            assert self.queue is not None  # reconciling only once started
            self.queue.add_after(key, actions.requeue_after)

    def _post_event(self, obj: dict[str, Any], event: Event) -> None:
        """Post an event without waiting for it, as client-go's recorder does: events are best
        effort (post_event swallows refusals), and a round trip per event held the worker from
        the next job. The task is kept until done (the loop holds tasks only weakly)."""
        task = asyncio.get_running_loop().create_task(self.writer.post_event(obj, event))
        self._events.add(task)
        task.add_done_callback(self._events.discard)

    async def _create(self, key: Key, children: list[dict[str, Any]]) -> bool:
        """Create the children in order; at the first refused, record why and stop (True: all made).

        Stopping matters: the Job's pods must not start while their headless Service's name is
        held by someone else's Service, which would then answer for the workers' hostnames."""
        for child in children:
            kind, name = child["kind"], child["metadata"]["name"]
            result = await self.writer.create(child)
            if result.obj is None:
                # A namespace being deleted takes the job with it: nothing is wrong, nothing to warn of.
                level = logging.INFO if result.reason == NAMESPACE_TERMINATING else logging.WARNING
                log.log(level, "%s/%s: creating %s %s refused: %s: %s", *key, kind, name, result.reason, result.message)
                self.cache.refused(key, kind, name, result.reason, result.message, self.writer.now())
                return False
            self.cache.put_child(kind, result.obj)
            self.cache.created(key, kind, name)
        return True

    async def _read_failed_creates(self, key: Key, read: FailedCreatesRead) -> None:
        """Record the Job controller's latest FailedCreate as the job's Refusal of kind Pod (or
        that there is none); the next pass reports it, and a new one brings that pass now. A read
        without an answer is not the pass's failure (whose retry would read again in seconds):
        the pass's own requeue, which backs off with the Job's wait, asks again."""
        try:
            async with self._failed_create_reads:
                found = await self.writer.failed_creates(read.namespace, read.job_uid)
        except (ApiError, ApiUnreachable) as error:
            log.info("%s/%s: reading the Job's FailedCreate events: %s; asking again later", *key, error)
            return
        refusal = None if found is None else Refusal("Pod", read.name, FAILED_CREATE, found[2], found[0], found[1])
        if self.cache.replace_refusal(key, "Pod", read.name, refusal):
            self.enqueue(key)

    async def _read_workload(self, key: Key, read: WorkloadRead) -> None:
        """Record Kueue's Workload of the job's queued Job; a change brings the next pass now."""
        found = await self.writer.workload(read.namespace, read.job_uid)
        if self.cache.workloads.get(key) != found:
            self.cache.workloads[key] = found
            self.enqueue(key)

    async def _patch_status(self, key: Key, status: dict[str, Any], read: Optional[MetricsRead],
                            now: datetime) -> Optional[dict[str, Any]]:
        """Write the pass's status. Should the API server refuse a patch that carries fresh figures,
        write it again without them (MetricsAvailable False, the server's reason): a figure must
        never keep the phase and conditions from being written."""
        try:
            return await self.writer.patch_status(*key, status)
        except ApiError as error:
            if read is None or error.status not in (400, 422):
                raise
            log.warning("status of %s/%s refused with its figures (%s); writing it without them", *key, error.reason)
            refused = f"the API server refused the figures: {error.status} {error.reason}"[:300]
            return await self.writer.patch_status(*key,
                                           with_metrics(read.status, None, now, read.generation, refused))

    def forget_metrics(self, key: Key, uid: str) -> None:
        """Drop a deleted job's collector (the gateway's Ray actor): it is small, but not free."""
        metrics = self.config.metrics
        if not metrics.address or not metrics.key or not uid:
            return

        async def delete() -> None:
            try:
                from ..figures.reader import delete as delete_collector

                await asyncio.wait_for(asyncio.to_thread(delete_collector, metrics.address, reader_token(metrics.key),
                                                         *key, uid), METRICS_READ_TIMEOUT)
            except Exception as error:  # noqa: BLE001 - best effort: the actor is small and detached
                log.info("could not remove the metrics actor of %s/%s: %s", *key, error)

        asyncio.get_running_loop().create_task(delete())

    async def _with_metrics(self, read: MetricsRead, now: datetime) -> tuple[dict[str, Any], list[Event]]:
        """The pass's status with fresh figures (or MetricsAvailable False and why), the world size
        and the in-place restarts the read brought, with an event for each new one: never raises."""
        metrics = self.config.metrics
        if not metrics.address or not metrics.key:
            return with_metrics(read.status, None, now, read.generation,
                                "the operator has no --metrics-address and --metrics-key-file (figures gateway) configured"), []
        try:
            from ..figures.reader import read as read_figures

            reading = await asyncio.wait_for(asyncio.to_thread(
                read_figures, metrics.address, reader_token(metrics.key), read.namespace, read.name, read.uid,
                read.workers, read.baseline_throughput, read.straggler_threshold,
            ), METRICS_READ_TIMEOUT + 1.0)
        except Exception as error:  # noqa: BLE001 - gateway absent or broken: say so in a condition, go on
            return with_metrics(read.status, None, now, read.generation, f"metrics unavailable: {error}"[:300]), []
        summary = reading.metrics
        if not summary.available:
            status = with_metrics(read.status, None, now, read.generation, (summary.reason or "")[:300])
        else:
            figures = summary.model_dump(by_alias=True, exclude_none=True, mode="json")
            status = with_metrics(read.status, figures, now, read.generation)
        return with_recoveries(with_world(status, reading.world_size), reading.recoveries)


def register(registry: kopf.OperatorRegistry, controller: Controller) -> None:
    """The controller's start and stop, as kopf's start-up and clean-up: kopf runs the lifecycle,
    the controller's own watches (started with it) bring every event."""

    @kopf.on.startup(registry=registry)
    async def _startup(**_: Any) -> None:
        await controller.start()  # kopf's settings: watching.operator_settings, given to kopf.run

    @kopf.on.cleanup(registry=registry)
    async def _cleanup(**_: Any) -> None:
        await controller.stop()
