"""Keras helper: `model.fit(..., callbacks=[tandem.metrics.keras_callback(batch_size)])`.

Reports one step per training batch. Keras gives no view of the collective inside a
MultiWorkerMirrored step, so records carry no compute/wait split (see `summary`).
"""

from __future__ import annotations

from typing import Any

from .reporter import reporter as default_reporter


def callback(samples_per_step: float, reporter: Any = None) -> Any:
    import keras

    r = reporter if reporter is not None else default_reporter()

    class TandemMetrics(keras.callbacks.Callback):  # type: ignore[misc]  # keras ships no types
        def on_train_begin(self, logs: Any = None) -> None:
            if hasattr(r, "mark"):
                r.mark()

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            r.step(samples_per_step)
            if logs and "loss" in logs and hasattr(r, "loss"):
                r.loss(float(logs["loss"]))  # for TensorBoard

    return TandemMetrics()
