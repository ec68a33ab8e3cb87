"""The in-training reporter: `step()` costs a clock read and a deque append, nothing more.

A daemon thread ships the buffered records every `SHIP_EVERY` seconds, as JSON lines, to a
small *shipper* process (`python -m tandem.metrics.shipper`) that it starts; the shipper is the
only process that sends them on (over HTTP, to the figures gateway in front of Ray). Nothing
of the metrics path runs inside the training process: a gateway or Ray that is slow to start,
hangs, or dies mid-run cannot block or kill training. The shipper dies with the training
process (PDEATHSIG) and, at exit, gets a bounded moment to ship the last records. If the pipe breaks (the shipper gave
up, after saying why once on stderr), the reporter drops records from then on.

The environment decides everything (the TANDEM_* contract): without TANDEM_METRICS=1, a
TANDEM_JOB and a TANDEM_METRICS_ADDRESS, `reporter()` returns a reporter whose `step()` does
nothing.

Besides the step records, the daemon thread sends the rank's *info* when it changes: its own step
count and the steps its training will take (`total()`, for status.progress's percent and ETA),
and, on local rank 0 of a worker with NVIDIA GPUs, the GPUs' utilisation and memory, sampled
from NVML about once a second (metrics/gpu.py). Info lines are JSON objects, record lines lists.
"""

from __future__ import annotations

import atexit
import collections
import json
import os
import select
import subprocess
import sys
import threading
import time
from typing import Any, Mapping, Optional, Union

from ..contract import ENV_JOB, ENV_METRICS, ENV_METRICS_ADDRESS, ENV_METRICS_PARENT, ENV_WORKER_INDEX
from ..figures.record import Step, encode
from . import gpu, tensorboard
from .tensorboard import EventLog

SHIP_EVERY = 0.5
#: Records held while nothing can take them (shipper not yet started or blocked).
MAX_BUFFER = 100_000
EXIT_FLUSH_SECONDS = 3.0
#: Encoded records waiting for the pipe; beyond this the oldest are dropped.
MAX_PENDING_BYTES = 8 << 20


class NullReporter:
    """What `reporter()` returns outside Tandem: every call does nothing."""

    enabled = False

    def step(self, samples: float = 0, wait: Optional[float] = None, tokens: Optional[float] = None) -> None:
        pass

    def loss(self, value: float) -> None:
        pass

    def total(self, steps: int) -> None:
        pass

    def close(self) -> None:
        pass


class Reporter:
    """Buffers one record per step and hands them to the shipper from a daemon thread."""

    enabled = True

    def __init__(self, env: Mapping[str, str], python: str = sys.executable):
        self.env = dict(env)
        self.worker = int(env.get(ENV_WORKER_INDEX) or 0)
        self.rank = int(env.get("LOCAL_RANK") or 0)
        self._python = python
        self._buffer: collections.deque[Step] = collections.deque(maxlen=MAX_BUFFER)
        self._previous: Optional[float] = None
        self._shipper: Optional[subprocess.Popen[bytes]] = None
        self._out = bytearray()
        self._broken = False
        self._closed = False
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._to_ray = metrics_enabled(env)
        self._board = EventLog(env) if tensorboard.enabled(env) else None
        self._loss: Optional[float] = None
        self._done = 0
        self._total: Optional[int] = None
        self._sent_info: Optional[dict[str, Any]] = None
        self._gpu: Optional[dict[str, Any]] = None
        self._gpu_at = 0.0
        self._sampler: Optional[gpu.Sampler] = None
        self._thread = threading.Thread(target=self._run, name="tandem-metrics", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    # -- the training thread's side -----------------------------------------------------------
    def step(self, samples: float = 0, wait: Optional[float] = None, tokens: Optional[float] = None) -> None:
        """One step done, with `samples` samples (and `tokens` tokens, for a language model's
        tokens/s); `wait`: seconds of it spent waiting for peers."""
        now = time.perf_counter()
        self._done += 1
        previous, self._previous = self._previous, now
        if previous is None or self._broken:
            return
        seconds = now - previous
        busy = None if wait is None else max(0.0, seconds - wait)
        self._buffer.append(Step(time.time(), samples, seconds, busy, tokens))

    def loss(self, value: float) -> None:
        """The latest loss, for TensorBoard (call it where the script already has the value)."""
        self._loss = float(value)

    def total(self, steps: int) -> None:
        """The steps this training will take (e.g. epochs x steps per epoch): status.progress then
        shows percent and ETA. The helpers call it where the framework knows the number."""
        steps = int(steps)
        if steps > 0:
            self._total = steps

    def mark(self) -> None:
        """Start timing from now (e.g. after a pause that is not training), without a record."""
        self._previous = time.perf_counter()

    # -- the daemon thread --------------------------------------------------------------------
    def _info(self) -> dict[str, Any]:
        """This rank's latest word besides its steps (wire names, figures/wire.py); samples the GPUs
        when a second has passed since the last sample."""
        if self._sampler is not None and time.monotonic() - self._gpu_at >= gpu.SAMPLE_EVERY:
            self._gpu_at = time.monotonic()
            self._gpu = self._sampler.sample()
        info: dict[str, Any] = {"stepsDone": self._done}
        if self._total is not None:
            info["stepsTotal"] = self._total
        return {**info, **(self._gpu or {})}

    def _run(self) -> None:
        self._sampler = gpu.sampler(self.env)
        if not self._to_ray:  # TensorBoard only: no shipper, no Ray
            while True:
                self._wake.wait(SHIP_EVERY)
                self._info()
                self._log_to_board(self._take_all())
        try:
            self._shipper = subprocess.Popen(
                [self._python, "-m", "tandem.metrics.shipper"],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                # No preexec_fn in a multi-threaded training process: the shipper sets its own
                # PDEATHSIG and checks that this process is still its parent.
                env={**os.environ, **self.env, ENV_METRICS_PARENT: str(os.getpid())},
                close_fds=True,
            )
        except OSError as error:
            print(f"tandem.metrics: cannot start the metrics shipper ({error}); training goes on without metrics",
                  file=sys.stderr, flush=True)
            self._broken = True
            return
        assert self._shipper.stdin is not None
        os.set_blocking(self._shipper.stdin.fileno(), False)
        # This thread never returns while the process lives, so PDEATHSIG (sent when the
        # *thread* that started the child ends) fires only when the training process exits.
        while True:
            self._wake.wait(SHIP_EVERY)
            self._ship()

    def _ship(self, deadline: Optional[float] = None) -> None:
        """Encode buffered records and write what the pipe takes now (it is non-blocking); with a
        deadline, keep writing until everything is out or the deadline passes."""
        shipper = self._shipper
        if shipper is None or shipper.stdin is None or self._broken:
            return
        if not self._lock.acquire(timeout=1.0):
            return
        try:
            while self._buffer:
                records = [self._buffer.popleft() for _ in range(min(5000, len(self._buffer)))]
                self._log_to_board(records)
                self._out += json.dumps([encode(r) for r in records], separators=(",", ":")).encode() + b"\n"
            info = self._info()
            if info != self._sent_info:
                self._sent_info = info
                self._out += json.dumps(info, separators=(",", ":"), allow_nan=False).encode() + b"\n"
            if len(self._out) > MAX_PENDING_BYTES:
                del self._out[: len(self._out) - MAX_PENDING_BYTES]
                cut = self._out.find(b"\n")
                del self._out[: cut + 1]
            fd = shipper.stdin.fileno()
            while self._out:
                try:
                    written = os.write(fd, self._out)
                    del self._out[:written]
                except BlockingIOError:
                    if deadline is None or time.monotonic() > deadline:
                        return
                    select.select([], [fd], [], max(0.0, deadline - time.monotonic()))
        except (BrokenPipeError, OSError, ValueError):
            self._broken = True  # the shipper has gone (and said why); drop from now on
            self._buffer.clear()
            self._out.clear()
        finally:
            self._lock.release()

    def _take_all(self) -> list[Step]:
        """Everything buffered so far; safe while the training thread keeps appending."""
        records: list[Step] = []
        try:
            while True:
                records.append(self._buffer.popleft())
        except IndexError:
            return records

    def _log_to_board(self, records: list[Step]) -> None:
        if self._board is not None and records:
            self._board.write(records, self._loss, self._gpu)

    def close(self) -> None:
        """Ship what is left and give the shipper a bounded moment to deliver it."""
        if self._closed:
            return
        self._closed = True
        if not self._to_ray:
            self._log_to_board(self._take_all())
            return
        shipper = self._shipper
        if shipper is None:
            return
        deadline = time.monotonic() + EXIT_FLUSH_SECONDS
        self._ship(deadline)
        try:
            if shipper.stdin is not None:
                shipper.stdin.close()
        except OSError:
            pass
        try:
            shipper.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            shipper.kill()


def metrics_enabled(env: Mapping[str, str]) -> bool:
    return env.get(ENV_METRICS) == "1" and bool(env.get(ENV_JOB)) and bool(env.get(ENV_METRICS_ADDRESS))


def reporting(env: Mapping[str, str]) -> bool:
    """A real reporter when figures go to the gateway, or event files to TensorBoard, or both."""
    return metrics_enabled(env) or tensorboard.enabled(env)


_reporter: Optional[Union[Reporter, NullReporter]] = None
_reporter_lock = threading.Lock()


def reporter(env: Optional[Mapping[str, str]] = None) -> Union[Reporter, NullReporter]:
    """This process's reporter (one per process): a `Reporter` under Tandem, else a `NullReporter`."""
    global _reporter
    if env is not None:
        return Reporter(env) if reporting(env) else NullReporter()
    with _reporter_lock:
        if _reporter is None:
            _reporter = Reporter(os.environ) if reporting(os.environ) else NullReporter()
        return _reporter
