"""The operator's own Prometheus metrics, served by prometheus_client on --metrics-port."""

from __future__ import annotations

from typing import Hashable

from prometheus_client import Counter, Gauge, Histogram, start_http_server

RECONCILES = Counter("tandem_reconcile_total", "Reconciles, by result.", ["result"])
RECONCILE_SECONDS = Histogram("tandem_reconcile_duration_seconds", "Time spent in one reconcile.")
JOBS = Gauge("tandem_trainingjobs", "TrainingJobs by phase.", ["phase"])
_phases: dict[Hashable, str] = {}


def observe_reconcile(result: str, seconds: float) -> None:
    RECONCILES.labels(result).inc()
    RECONCILE_SECONDS.observe(seconds)


def set_phase(key: Hashable, phase: str) -> None:
    previous = _phases.get(key)
    if previous == phase:
        return
    if previous is not None:
        JOBS.labels(previous).dec()
    JOBS.labels(phase).inc()
    _phases[key] = phase


def forget(key: Hashable) -> None:
    previous = _phases.pop(key, None)
    if previous is not None:
        JOBS.labels(previous).dec()


def serve(port: int) -> None:
    start_http_server(port)
