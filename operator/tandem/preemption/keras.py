"""Keras `model.fit`: save and stop on a preemption; resume from the backup on restart.

    from tandem.preemption import keras as preemption
    model.fit(..., callbacks=[preemption.backup_and_restore("/ckpt/backup", save_freq=100)])

`backup_and_restore` is keras.callbacks.BackupAndRestore (it restores the backup in
on_train_begin, so a restarted fit() goes on from it) that also saves the backup at once and
ends fit() when a SIGTERM has arrived, so a preempted worker loses no step it trained.

What Keras 3 restores, plainly: the weights, the optimizer state and the epoch. A fit()
restarted mid-epoch begins that epoch's batches again from its first batch, with the weights of
the step it stopped at (Keras records the batch but does not skip to it). For an exact resume
at the step, write the loop yourself (jobs/train_keras.py: a step counter in a
tf.train.Checkpoint and `dataset.skip(step)`). Keras 3's callback is not multi-worker aware:
under MultiWorkerMirroredStrategy give each worker its own backup_dir.
"""

from __future__ import annotations

from typing import Any, Union

from . import exit_code, install, requested, signal_number

__all__ = ["backup_and_restore", "exit_code", "install", "requested", "signal_number"]


def backup_and_restore(backup_dir: str, save_freq: Union[int, str] = "epoch") -> Any:
    """A BackupAndRestore that keeps its backup after fit() (a later run may resume from it) and
    saves it, then stops training, at the first batch end after a SIGTERM."""
    import keras

    install()

    class PreemptibleBackupAndRestore(keras.callbacks.BackupAndRestore):  # type: ignore[misc]  # keras ships no types
        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            super().on_train_batch_end(batch, logs)
            if requested() and not self.model.stop_training:
                self._save_model()  # Keras' own save: weights + training metadata, restored on start
                self.model.stop_training = True

    return PreemptibleBackupAndRestore(backup_dir, save_freq=save_freq, delete_checkpoint=False)
