"""Throughput, scaling efficiency and stragglers of a training job, reported by the training process.

In a training script::

    from tandem import metrics
    r = metrics.reporter()            # a no-op outside Tandem
    ...
    r.total(steps)                    # optional: the steps in all, for status.progress's percent and ETA
    r.step(samples=batch_size)        # once per step

or, with no edit to the loop, one line after building the model:

    metrics.track_ddp(ddp_model, optimizer, samples_per_step=batch_size,  # PyTorch DDP
                      loader=train_loader, epochs=3)      # optional: the total, for percent and ETA
    model.fit(..., callbacks=[metrics.keras_callback(batch_size)])         # Keras

This package is the worker side, what runs in (or beside) the training process; no Ray here.
Modules: `reporter` (in the training process), `shipper` (the per-process HTTP client of the
figures gateway), `tensorboard` (the event files a worker writes), `gpu` (NVML sampling), and
`pytorch` and `keras` (framework helpers). The figures travel on through the figures service
(`tandem.gateway`, beside the Ray head); their checks, reading and maths live in `tandem.figures`.
What `tandem run` does with them on this machine (its private Ray, the recorded baseline) lives
in `tandem.local`; this package imports neither `tandem.local` nor `tandem.backends`.
"""

from __future__ import annotations

from typing import Any, Optional

from .reporter import NullReporter, Reporter, reporter

__all__ = ["NullReporter", "Reporter", "keras_callback", "reporter", "track_ddp"]


def track_ddp(model: Any, optimizer: Any, samples_per_step: float, reporter_: Any = None, *,
              total_steps: Optional[int] = None, loader: Any = None, epochs: int = 1) -> Any:
    """Report every optimizer step of a DDP model, with its compute/wait split; the total steps
    (`total_steps`, or len(loader) x epochs) give percent and ETA; see `pytorch`."""
    from .pytorch import track_ddp as track

    return track(model, optimizer, samples_per_step, reporter_, total_steps=total_steps, loader=loader, epochs=epochs)


def keras_callback(samples_per_step: float, reporter_: Any = None) -> Any:
    """A Keras callback that reports each training batch; see `keras`."""
    from .keras import callback

    return callback(samples_per_step, reporter_)
