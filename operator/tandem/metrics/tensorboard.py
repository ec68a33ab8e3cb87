"""TensorBoard event files from every worker, written with the framework's own writer.

PyTorch jobs write through torch.utils.tensorboard, TensorFlow jobs through tf.summary, so the
files are exactly what each community's tools expect: the framework names its writer
(tandem.frameworks, Framework.tensorboard_writer), imported here on first use. The reporter's
daemon thread feeds this log with the steps it already buffers, so training pays nothing extra:
per interval it writes a rate for every count a step carries (figures/record.py COUNTS: samples/s
as `tandem/throughput_samples_per_s`, and so on), the mean step time, when the script reports one
the loss, and on a worker with NVIDIA GPUs their utilisation and memory in use (metrics/gpu.py).
Each worker (and rank) writes under `<TANDEM_TENSORBOARD_DIR>/worker-<i>[-rank-<r>]`.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any, Callable, Mapping, Optional, Protocol, Sequence, cast

from .. import frameworks
from ..contract import ENV_FRAMEWORK, ENV_PROCS_PER_WORKER, ENV_TENSORBOARD, ENV_TENSORBOARD_DIR, ENV_WORKER_INDEX
from ..figures.record import COUNTS, Step, count


def enabled(env: Mapping[str, str]) -> bool:
    return env.get(ENV_TENSORBOARD) == "1" and bool(env.get(ENV_TENSORBOARD_DIR))


def run_directory(env: Mapping[str, str]) -> str:
    worker, rank = env.get(ENV_WORKER_INDEX) or "0", env.get("LOCAL_RANK") or "0"
    name = f"worker-{worker}" if int(env.get(ENV_PROCS_PER_WORKER) or 1) == 1 else f"worker-{worker}-rank-{rank}"
    return os.path.join(env[ENV_TENSORBOARD_DIR], name)


class Writer(Protocol):
    """What a framework's writer does: Class(directory), then scalars and flushes."""

    def scalar(self, tag: str, value: float, step: int) -> None: ...

    def flush(self) -> None: ...


def writer_class(framework: str) -> Callable[[str], Writer]:
    """The framework's writer class, from its "module:Class" name."""
    module, _, name = frameworks.get(framework).tensorboard_writer.partition(":")
    return cast(Callable[[str], Writer], getattr(importlib.import_module(module), name))


class TorchWriter:
    def __init__(self, directory: str):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=directory)

    def scalar(self, tag: str, value: float, step: int) -> None:
        self.writer.add_scalar(tag, value, step)

    def flush(self) -> None:
        self.writer.flush()


class TensorFlowWriter:
    def __init__(self, directory: str):
        import tensorflow as tf

        self.tf = tf
        self.writer = tf.summary.create_file_writer(directory)

    def scalar(self, tag: str, value: float, step: int) -> None:
        with self.writer.as_default():
            self.tf.summary.scalar(tag, value, step=step)

    def flush(self) -> None:
        self.writer.flush()


class EventLog:
    """Turns batches of step records into TensorBoard scalars; never raises into training."""

    def __init__(self, env: Mapping[str, str]):
        self.env = dict(env)
        self.directory = run_directory(env)
        self.steps = 0
        self._writer: Optional[Writer] = None
        self._failed = False

    def _open(self) -> Optional[Writer]:
        if self._writer is None and not self._failed:
            try:
                os.makedirs(self.directory, exist_ok=True)
                self._writer = writer_class(self.env.get(ENV_FRAMEWORK, ""))(self.directory)
            except Exception as error:  # noqa: BLE001 - no tensorboard package, unwritable dir...: say it once
                self._failed = True
                print(f"tandem.metrics: TensorBoard event files disabled ({error})", file=sys.stderr, flush=True)
        return self._writer

    def write(self, records: Sequence[Step], loss: Optional[float] = None,
              gpu: Optional[Mapping[str, Any]] = None) -> None:
        """records: the steps since the last call (each timed: the reporter records none without
        `seconds`); gpu: the latest NVML sample."""
        if not records:
            return
        writer = self._open()
        if writer is None:
            return
        self.steps += len(records)
        seconds = sum(r.seconds or 0.0 for r in records)
        try:
            if seconds > 0:
                for name in COUNTS:
                    total = count(records, name)
                    if total is not None:
                        writer.scalar(f"tandem/throughput_{name}_per_s", total / seconds, self.steps)
                writer.scalar("tandem/step_time_s", seconds / len(records), self.steps)
            if loss is not None:
                writer.scalar("tandem/loss", loss, self.steps)
            if gpu:
                writer.scalar("tandem/gpu_utilization_percent", float(gpu["gpuUtil"]), self.steps)
                writer.scalar("tandem/gpu_memory_used_bytes", float(gpu["gpuMemUsed"]), self.steps)
            writer.flush()
        except Exception as error:  # noqa: BLE001 - a broken writer must never stop training
            self._failed, self._writer = True, None
            print(f"tandem.metrics: TensorBoard event files stopped ({error})", file=sys.stderr, flush=True)
