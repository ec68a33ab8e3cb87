"""The metrics math, pure: step records in, a `MetricsStatus` out. No Ray, no I/O, no clocks.

Records
    Every training process (a *rank*; under torchrun a worker runs several) reports one
    `record.Step` per step: ``t`` when the step ended, on that process's own clock; ``samples``;
    ``seconds`` the time since its previous step; ``busy`` the part of it the process spent
    computing rather than waiting for its peers (None when not measured).

Window
    Each rank's figures come from its own last ``window_s`` seconds (by its own clock, so no
    clock has to agree with another machine's), at most ``max_steps`` steps.

Throughput
    rank samples/s = samples / seconds over its window; a worker's is the sum over its ranks
    (they train side by side); the job's is the sum over workers. Scaling efficiency =
    throughput / (workers x one-worker throughput); without a one-worker throughput, and with
    every rank's compute time measured, throughput / the sum of the workers' capacities (below):
    the part of the step time spent computing, labelled as such (efficiencyBasis: compute-time).
    Tokens/s likewise, where the steps carry tokens: a rank's only when all its windowed steps
    do, a worker's and the job's only when all their ranks' do (a sum over part of them would
    understate).

Stragglers under synchronous training
    With DDP (and TF MultiWorkerMirrored) every step ends in an allreduce that no rank can leave
    before the slowest one arrives, so every worker shows the *same* samples/s and step time: a
    slow worker slows everyone, and comparing throughputs names nobody. What differs is where
    the time goes. The slow worker computes for the whole step and barely waits in the
    collective; the others finish early and wait. So each step also carries ``busy`` = step time
    minus the time spent waiting in the collective (the PyTorch helper measures it with a DDP
    communication hook: from the moment the last gradient bucket is ready to the moment its
    allreduce completes), and a worker's *capacity* = samples / busy seconds, the rate it would
    train at if nobody held it back. A worker with several ranks is as fast as its slowest rank
    (capacity = ranks x the lowest rank capacity). The straggler is the worker with the lowest
    capacity, if that is below ``straggler_threshold`` x the median capacity of the other workers
    (of its peers: with two workers, x the other one's).
    Where ``busy`` is unknown (a plain ``step()`` call, Keras), capacity falls back to throughput,
    which finds stragglers only where training is not lock-step (e.g. asynchronous input stalls).

Noise is not a straggler
    One ratio over a short run names timing noise (a 128-step run of 3-6 ms steps once named a
    worker at 69%). So a straggler is named only from a window of at least
    ``STRAGGLER_MIN_STEPS`` steps and ``STRAGGLER_MIN_SECONDS`` seconds on every worker (or a full
    window of ``max_steps`` steps: fast steps fill it sooner), and only
    if the gap holds across it: the window is cut into ``STRAGGLER_PARTS`` consecutive parts, and
    the same worker must be below the threshold in every part (and over the whole window).
    Otherwise status.metrics.stragglerCheck says why none was named (too little data).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional, Sequence

from ..api.status import MAX_WORKER_FIGURES, MetricsStatus, WorkerMetrics
from . import eta, record
from .record import Step

WINDOW_SECONDS = 30.0
MAX_STEPS = 1000
#: The smallest window a straggler is named from: each of the STRAGGLER_PARTS parts then holds
#: at least 10 steps and about a second of training on every worker.
STRAGGLER_MIN_STEPS = 40
STRAGGLER_MIN_SECONDS = 4.0
STRAGGLER_PARTS = 4


RankKey = tuple[int, int]  # (worker index, local rank)


@dataclass(frozen=True)
class RankInfo:
    """What a rank said besides its steps (its latest word; checked by figures.snapshot): its own
    step count and the steps its training will take, and its worker's GPUs as NVML saw them."""

    steps_done: Optional[int] = None
    steps_total: Optional[int] = None
    gpus: Optional[int] = None
    gpu_utilization: Optional[float] = None
    gpu_memory_used: Optional[int] = None
    gpu_memory_total: Optional[int] = None


def worker_info(ranks: Sequence[RankInfo]) -> dict[str, Any]:
    """One worker's WorkerMetrics fields from its ranks' words: the furthest-behind rank's steps, the
    largest total, and the GPU figures of the rank that sampled them (one per worker does)."""
    done = [r.steps_done for r in ranks if r.steps_done is not None]
    totals = [r.steps_total for r in ranks if r.steps_total is not None]
    gpu = next((r for r in ranks if r.gpus), None)
    fields: dict[str, Any] = {"steps_done": min(done) if done else None, "steps_total": max(totals) if totals else None}
    if gpu is not None:
        fields.update(gpus=gpu.gpus, gpu_utilization=gpu.gpu_utilization, gpu_memory_used=gpu.gpu_memory_used,
                      gpu_memory_total=gpu.gpu_memory_total)
    return fields


def window(steps: Sequence[Step], seconds: float = WINDOW_SECONDS, max_steps: int = MAX_STEPS) -> list[Step]:
    """The steps of one rank that ended within `seconds` of its latest one, at most `max_steps`."""
    if not steps:
        return []
    latest = max(s.t for s in steps)
    recent = [s for s in steps if s.t >= latest - seconds]
    recent.sort(key=lambda s: s.t)
    return recent[-max_steps:] if max_steps > 0 else recent


def percentile(values: Iterable[float], q: float) -> Optional[float]:
    """The q-th percentile (0..100) by linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return None
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is not within 0..100")
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    fraction = position - low
    return ordered[low] + (ordered[high] - ordered[low]) * fraction


def median(values: Iterable[float]) -> Optional[float]:
    return percentile(values, 50.0)


@dataclass(frozen=True)
class RankFigures:
    steps: int
    samples: float
    seconds: float
    busy: Optional[float]
    step_times: tuple[float, ...]
    #: Tokens over the window; None unless every step said how many.
    tokens: Optional[float] = None

    @property
    def throughput(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else 0.0

    @property
    def token_throughput(self) -> Optional[float]:
        return None if self.tokens is None or self.seconds <= 0 else self.tokens / self.seconds

    @property
    def capacity(self) -> float:
        """Samples per second of compute: what this rank could do if it never waited for peers."""
        busy = self.busy if self.busy is not None and self.busy > 0 else self.seconds
        return self.samples / busy if busy > 0 else 0.0


def rank_figures(steps: Sequence[Step]) -> RankFigures:
    """Figures of one rank's windowed steps; steps without a duration (the first) are left out."""
    timed = [s for s in steps if s.seconds is not None and s.seconds > 0]
    busy: Optional[float] = None
    if timed and all(s.busy is not None for s in timed):
        busy = sum(min(max(s.busy or 0.0, 0.0), s.seconds or 0.0) for s in timed)
    return RankFigures(
        steps=len(timed),
        samples=sum(s.samples for s in timed),
        seconds=sum(s.seconds or 0.0 for s in timed),
        busy=busy,
        step_times=tuple(s.seconds or 0.0 for s in timed),
        tokens=record.count(timed, "tokens"),
    )


@dataclass(frozen=True)
class WorkerFigures:
    index: int
    throughput: float
    capacity: float
    steps: int
    step_times: tuple[float, ...]
    #: Steps per second over the window (the slowest rank's), None with too few steps to trust.
    step_rate: Optional[float] = None
    #: Tokens per second of its ranks; None unless every rank said how many tokens.
    token_throughput: Optional[float] = None


def worker_figures(index: int, ranks: Sequence[RankFigures]) -> WorkerFigures:
    active = [r for r in ranks if r.steps]
    rates = [rate for rate in (eta.rate(r.steps, r.seconds) for r in active) if rate is not None]
    capacity = len(active) * min((r.capacity for r in active), default=0.0)
    return WorkerFigures(
        index=index,
        throughput=sum(r.throughput for r in active),
        capacity=capacity,
        steps=max((r.steps for r in active), default=0),
        step_times=tuple(t for r in active for t in r.step_times),
        step_rate=min(rates) if active and len(rates) == len(active) else None,
        token_throughput=summed(r.token_throughput for r in active),
    )


def summed(values: Iterable[Optional[float]]) -> Optional[float]:
    """The sum of `values`; None when there are none, or any is None (a part would understate)."""
    listed = list(values)
    return None if not listed or any(v is None for v in listed) else sum(v for v in listed if v is not None)


def straggler(capacities: Mapping[int, float], threshold: float) -> Optional[int]:
    """The worker with the lowest capacity if it is below threshold x the median of the *other*
    workers (with two workers: below threshold x the other one); None with fewer than 2 workers."""
    if len(capacities) < 2:
        return None
    slowest = min(sorted(capacities), key=lambda i: capacities[i])
    peers = median(c for i, c in capacities.items() if i != slowest)
    assert peers is not None
    return slowest if capacities[slowest] < threshold * peers else None


def parts(steps: Sequence[Step], count: int) -> list[Sequence[Step]]:
    """`steps` cut into `count` consecutive runs of (nearly) equal length."""
    size = len(steps)
    return [steps[i * size // count:(i + 1) * size // count] for i in range(count)]


def lasting_straggler(whole: Mapping[int, float], by_part: Sequence[Mapping[int, float]],
                      threshold: float) -> Optional[int]:
    """The straggler of the whole window if the same worker is the straggler of every part too;
    None when any part names nobody or someone else (the gap came and went: noise)."""
    found = straggler(whole, threshold)
    if found is None or any(straggler(part, threshold) != found for part in by_part):
        return None
    return found


def too_little_data(steps: int, seconds: float, max_steps: int = MAX_STEPS) -> Optional[str]:
    """Why no straggler can be named from a window whose shortest worker has `steps` steps over
    `seconds` seconds; None when the window is long enough: `STRAGGLER_MIN_STEPS` steps over
    `STRAGGLER_MIN_SECONDS`, or a full window (`max_steps` steps, each part of it hundreds of
    steps), which fast steps (under 4 ms) fill before 4 s have passed: without it, they could
    never be judged."""
    if steps >= STRAGGLER_MIN_STEPS and (seconds >= STRAGGLER_MIN_SECONDS or steps >= max_steps):
        return None
    return (f"too little data: {steps} steps over {seconds:.1f} s; a straggler is named from "
            f"{STRAGGLER_MIN_STEPS} steps and {STRAGGLER_MIN_SECONDS:g} s (or {max_steps} steps) on every worker")


def judge_straggler(ranks_by_worker: Mapping[int, Sequence[Sequence[Step]]],
                    threshold: float, max_steps: int = MAX_STEPS) -> tuple[Optional[int], Optional[str]]:
    """(straggler, why none was judged) from each worker's ranks' windowed steps."""
    if len(ranks_by_worker) < 2:
        return None, None
    figures = {w: [rank_figures(r) for r in ranks] for w, ranks in ranks_by_worker.items()}
    shortest = min(max(f.steps for f in ranks) for ranks in figures.values())
    seconds = min(min(f.seconds for f in ranks if f.steps) for ranks in figures.values())
    why = too_little_data(shortest, seconds, max_steps)
    if why is not None:
        return None, why
    whole = {w: worker_figures(w, ranks).capacity for w, ranks in figures.items()}
    by_part = [
        {w: worker_figures(w, [rank_figures(parts(r, STRAGGLER_PARTS)[i]) for r in ranks]).capacity
         for w, ranks in ranks_by_worker.items()}
        for i in range(STRAGGLER_PARTS)
    ]
    return lasting_straggler(whole, by_part, threshold), None


def finite(value: Optional[float]) -> Optional[float]:
    """`value` if it is a finite number, else None: sums and ratios of huge (but finite) reported
    figures can overflow, and status must never carry a NaN or infinity."""
    return value if value is not None and math.isfinite(value) else None


def efficiency(throughput: Optional[float], workers: int, baseline: Optional[float]) -> Optional[float]:
    if throughput is None or not baseline or baseline <= 0 or workers < 1:
        return None
    return throughput / (workers * baseline)


def compute_time_efficiency(throughput: Optional[float], capacities: Sequence[float]) -> Optional[float]:
    """Scaling efficiency without a one-worker throughput: throughput over what the workers would
    train at if none waited for its peers (the sum of their capacities), i.e. the part of the
    step time spent computing. Only from two workers up, each with measured compute time: one
    worker waits for nobody, and a capacity that fell back to throughput would read 100 %."""
    total = sum(capacities)
    if throughput is None or len(capacities) < 2 or total <= 0:
        return None
    return min(1.0, throughput / total)


def summarize(
    records: Mapping[RankKey, Sequence[Step]],
    workers: int,
    baseline: Optional[float] = None,
    straggler_threshold: float = 0.8,
    window_s: float = WINDOW_SECONDS,
    max_steps: int = MAX_STEPS,
    updated_at: Optional[str] = None,
    steps_total: Optional[Mapping[RankKey, int]] = None,
    reason: Optional[str] = None,
    info: Optional[Mapping[RankKey, RankInfo]] = None,
) -> MetricsStatus:
    """The job's figures from every rank's records; `steps_total`: steps each rank reported so far;
    `reason`: what was dropped before (metrics.snapshot), kept in status.metrics.reason; `info`: each
    rank's latest word besides its steps (its step count and total, its worker's GPUs)."""
    by_worker: dict[int, list[RankFigures]] = {}
    windowed: dict[int, list[list[Step]]] = {}
    totals: dict[int, int] = {}
    for (worker, rank), steps in sorted(records.items()):
        timed = [s for s in window(steps, window_s, max_steps) if s.seconds is not None and s.seconds > 0]
        ranked = rank_figures(timed)
        by_worker.setdefault(worker, []).append(ranked)
        if ranked.steps:
            windowed.setdefault(worker, []).append(timed)
        reported = (steps_total or {}).get((worker, rank), len(steps))
        totals[worker] = max(totals.get(worker, 0), reported)
    figures = [worker_figures(i, ranks) for i, ranks in sorted(by_worker.items())]
    figures = [f for f in figures if f.steps]
    overflowed = [f.index for f in figures if finite(f.throughput) is None or finite(f.capacity) is None]
    figures = [f for f in figures if f.index not in overflowed]
    notes = [reason] if reason else []
    if overflowed:
        notes.append(f"figures of worker(s) {', '.join(map(str, overflowed[:5]))} overflowed")
    if len(figures) > MAX_WORKER_FIGURES:
        notes.append(f"per-worker figures kept for the first {MAX_WORKER_FIGURES} workers only")
    note = "; ".join(notes)[:1000] or None
    if not figures:
        return MetricsStatus(available=True, baseline_throughput=baseline, updated_at=updated_at, reason=note)
    total = finite(sum(f.throughput for f in figures))
    kept = {f.index for f in figures}
    measured = all(r.busy is not None for w, ranks in by_worker.items() if w in kept for r in ranks if r.steps)
    scaling, basis = finite(efficiency(total, workers, baseline)), "baseline"
    if scaling is None and measured:
        scaling, basis = finite(compute_time_efficiency(total, [f.capacity for f in figures])), "compute-time"
    slow, why = judge_straggler({w: r for w, r in windowed.items() if w in kept}, straggler_threshold, max_steps)
    all_times = [t for f in figures for t in f.step_times]
    per_worker = [
        WorkerMetrics(
            index=f.index,
            throughput=f.throughput,
            step_time_p50=finite(percentile(f.step_times, 50)),
            step_time_p95=finite(percentile(f.step_times, 95)),
            steps=totals.get(f.index, f.steps),
            capacity=f.capacity,
            step_rate=finite(f.step_rate),
            token_throughput=finite(f.token_throughput),
            **worker_info([i for (w, _), i in sorted((info or {}).items()) if w == f.index]),
        )
        for f in figures[:MAX_WORKER_FIGURES]
    ]
    return MetricsStatus(
        available=True,
        reason=note,
        throughput=total,
        token_throughput=finite(summed(f.token_throughput for f in figures)),
        per_worker=per_worker,
        scaling_efficiency=scaling,
        efficiency_basis=basis if scaling is not None else None,
        baseline_throughput=baseline,
        step_time_p50=finite(percentile(all_times, 50)),
        step_time_p95=finite(percentile(all_times, 95)),
        straggler=slow,
        straggler_check=why,
        updated_at=updated_at,
    )


def unavailable(reason: str = "", updated_at: Optional[str] = None) -> MetricsStatus:
    return MetricsStatus(available=False, updated_at=updated_at, reason=reason or None)
