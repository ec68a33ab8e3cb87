"""Keras helper: `model.fit(..., callbacks=[tandem.metrics.keras_callback(batch_size)])`.

Reports one step per training batch. Keras gives no view of the collective inside a
MultiWorkerMirrored step, so records carry no compute/wait split (see `summary`). The total
(for status.progress's percent and ETA) is what Keras knows at the start of fit():
params["steps"] x params["epochs"]; unknown (a dataset of unknown length) means none is reported.
"""

from __future__ import annotations

from typing import Any, Optional

from .reporter import reporter as default_reporter


def keras_total(params: Any) -> Optional[int]:
    """params["steps"] x params["epochs"], the steps fit() will take; None when Keras does not know."""
    steps, epochs = (params or {}).get("steps"), (params or {}).get("epochs")
    if isinstance(steps, int) and isinstance(epochs, int) and steps > 0 and epochs > 0:
        return steps * epochs
    return None


def callback(samples_per_step: float, reporter: Any = None) -> Any:
    import keras

    r = reporter if reporter is not None else default_reporter()

    class TandemMetrics(keras.callbacks.Callback):  # type: ignore[misc]  # keras ships no types
        def on_train_begin(self, logs: Any = None) -> None:
            if hasattr(r, "mark"):
                r.mark()
            total = keras_total(self.params)
            if total is not None and hasattr(r, "total"):
                r.total(total)

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            r.step(samples_per_step)
            if logs and "loss" in logs and hasattr(r, "loss"):
                r.loss(float(logs["loss"]))  # for TensorBoard

    return TandemMetrics()
