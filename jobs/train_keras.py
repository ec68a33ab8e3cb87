"""TensorFlow example: a Keras model under MultiWorkerMirroredStrategy, synthetic data.

Tandem's launcher sets TF_CONFIG; without it the strategy runs as a single worker.

Why a custom training loop and not model.fit: with TF 2.21 / Keras 3.15, model.fit under a
*multi-worker* MultiWorkerMirroredStrategy fails before the first step (Keras' TF trainer
`_maybe_symbolic_build` calls strategy.reduce on a PerReplica batch -> "Attempt to convert a
value (PerReplica...) to a Tensor"; keras-team/keras#20585, tensorflow/tensorflow#72388). It
works with one worker, so it is easy to miss. The loop below is the documented alternative:
strategy.run over a Keras model, whose Keras 3 optimizer all-reduces the gradients.

Checkpoints: a tf.train.CheckpointManager (model, optimizer, step) saved every
--checkpoint-every steps by every worker, because saving is collective under MWMS: the chief
(index 0) into --checkpoint-dir, the others into a temporary dir they delete, as the TF
multi-worker guide requires. On start the chief's latest checkpoint is restored (a shared dir
locally, a shared volume on a cluster), so a restart loses at most the steps since then.
keras.callbacks.BackupAndRestore is not used: it needs model.fit, and in Keras 3 it is not
multi-worker aware (every worker writes the same files) and restores the epoch, not the step
(model.fit users: tandem.preemption.keras.backup_and_restore wraps it).

On SIGTERM (a preempted or deleted pod, Ctrl-C of `tandem run`) every worker stops at the same
step, the checkpoint is saved there, and the process exits 143 (tandem.preemption): whether any
worker was asked to stop is summed across workers inside the training step, so all agree.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--steps-per-epoch", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=64, help="per worker; the global batch is this x workers")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--samples", type=int, default=8192)
    p.add_argument("--features", type=int, default=64)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    default_ckpt = os.environ.get("TANDEM_CHECKPOINT_DIR") or os.path.join(
        "checkpoints", os.environ.get("TANDEM_JOB") or "local"
    )
    p.add_argument("--checkpoint-dir", default=default_ckpt)
    p.add_argument("--checkpoint-every", type=int, default=0, help="steps; 0: once per epoch")
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--output-dir", default=None, help="each worker writes worker<i>.json here at the end")
    p.add_argument("--crash-at-step", type=int, default=None, help="test only: exit at this global step, once")
    p.add_argument("--crash-rank", type=int, default=0, help="worker index that crashes")
    p.add_argument("--crash-exit-code", type=int, default=1)
    return p.parse_args(argv)


def task() -> tuple[int, int]:
    """(worker index, worker count) from TF_CONFIG; (0, 1) without it."""
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    workers = len(config.get("cluster", {}).get("worker", [])) or 1
    return int(config.get("task", {}).get("index", 0)), workers


def synthetic_data(samples: int, features: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Same arrays on every worker: labels from a fixed random linear teacher, so it is learnable."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((samples, features)).astype("float32")
    teacher = rng.standard_normal((features, classes)).astype("float32")
    y = (x @ teacher + 0.1 * rng.standard_normal((samples, classes))).argmax(axis=1).astype("int64")
    return x, y


def make_dataset(args: argparse.Namespace, global_batch: int) -> tf.data.Dataset:
    x, y = synthetic_data(args.samples, args.features, args.classes, args.seed)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=args.seed).repeat()
    dataset = dataset.batch(global_batch, drop_remainder=True)
    options = tf.data.Options()
    # In-memory data has no files to shard by: each worker takes every n-th element.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def make_model(args: argparse.Namespace) -> keras.Model:
    """Logits out; built (Input layer) so its variables exist before restore."""
    return keras.Sequential(
        [
            keras.Input(shape=(args.features,)),
            keras.layers.Dense(args.hidden, activation="relu"),
            keras.layers.Dense(args.classes),
        ]
    )


def checksum(model: keras.Model) -> str:
    """sha256 of every weight's bytes: equal across workers iff their weights are."""
    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    return digest.hexdigest()


def maybe_crash(args: argparse.Namespace, step: int, index: int) -> None:
    """Fault injection: exit once per checkpoint dir (marker file), so the restarted group runs through."""
    if args.crash_at_step is None or step != args.crash_at_step or index != args.crash_rank:
        return
    marker = Path(args.checkpoint_dir) / f"crash-injected-worker{index}-step{step}"
    if marker.exists():
        return
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(str(args.crash_exit_code))
    print(f"worker {index}: injected crash at step {step}, exit code {args.crash_exit_code}", flush=True)
    os._exit(args.crash_exit_code)


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    # --- Tandem preemption hook ----------------------------------------------------------
    # SIGTERM sets a flag instead of killing the process; the loop saves and stops at the next
    # step end. Without tandem installed, SIGTERM ends the process as before.
    try:
        from tandem import preemption
    except ImportError:
        preemption = None
    if preemption is not None:
        preemption.install()
    # --------------------------------------------------------------------------------------
    index, workers = task()
    keras.utils.set_random_seed(args.seed)
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    if preemption is not None:
        # Again: with several workers the strategy starts TensorFlow's coordination service,
        # whose preemption notifier takes SIGTERM over below Python; this takes it back.
        preemption.install()
    global_batch = args.batch_size * strategy.num_replicas_in_sync
    with strategy.scope():
        model = make_model(args)
        optimizer = keras.optimizers.SGD(learning_rate=args.lr, momentum=0.9)
        optimizer.build(model.trainable_variables)
        step_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="none")

    chief = index == 0
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=step_var)
    directory = args.checkpoint_dir if chief else tempfile.mkdtemp(prefix=f"tandem-worker{index}-")
    manager = tf.train.CheckpointManager(checkpoint, directory, max_to_keep=2)
    latest = tf.train.latest_checkpoint(args.checkpoint_dir)
    if latest:
        checkpoint.restore(latest).assert_existing_objects_matched()
        print(f"worker {index}: resumed from step {int(step_var.numpy())}", flush=True)
    step = int(step_var.numpy())
    total = args.epochs * args.steps_per_epoch
    every = args.checkpoint_every or args.steps_per_epoch

    # Skip what the restored steps consumed: the same (seeded) order as an uninterrupted run.
    dataset = make_dataset(args, global_batch).skip(step)
    iterator = iter(strategy.experimental_distribute_dataset(dataset))

    @tf.function
    def train_step(batch: Any, stop: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """One step; also sums each worker's stop flag across workers, so all stop together."""
        def replica_step(x: tf.Tensor, y: tf.Tensor, flag: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            with tf.GradientTape() as tape:
                per_example = loss_fn(y, model(x, training=True))
                loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))  # all-reduces grads
            return loss, flag

        loss, flags = strategy.run(replica_step, args=(*batch, stop))
        return (strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None),
                strategy.reduce(tf.distribute.ReduceOp.SUM, flags, axis=None))

    # --- Tandem metrics hook -------------------------------------------------------------
    # Reports samples/s to Tandem; a no-op outside Tandem, or where tandem is not installed.
    # (model.fit users: callbacks=[metrics.keras_callback(global_batch // workers)].)
    try:
        from tandem import metrics

        reporter = metrics.reporter()
        reporter.total(total - step)  # the steps this process will take, for percent and ETA
    except ImportError:
        reporter = None
    # --------------------------------------------------------------------------------------
    loss_value: Optional[float] = None
    started = time.monotonic()
    while step < total:
        maybe_crash(args, step, index)
        asked = preemption is not None and preemption.requested()
        loss_tensor, stops = train_step(next(iterator), tf.constant(1.0 if asked else 0.0))
        loss_value = float(loss_tensor)
        step += 1
        stopping = float(stops) > 0
        if reporter is not None:  # [tandem-metrics hook]
            reporter.step(samples=global_batch // workers)
            reporter.loss(loss_value)  # for TensorBoard (spec.tensorboard)
        if step % args.log_every == 0 or step == total:
            print(f"worker {index}: step {step}/{total} loss {loss_value:.4f}", flush=True)
        if step % every == 0 or step == total or stopping:
            step_var.assign(step)
            manager.save(checkpoint_number=step)  # every worker: saving is collective under MWMS
        if stopping:
            print(f"worker {index}: stopping at step {step}: asked to stop (SIGTERM), checkpoint saved at step {step}",
                  flush=True)
            if not chief:
                shutil.rmtree(directory, ignore_errors=True)
            return (preemption.exit_code() if preemption is not None else 0) or 143  # a peer's SIGTERM: 143 too
    if not chief:
        shutil.rmtree(directory, ignore_errors=True)
    if chief:
        print(f"done: {step} steps in {time.monotonic() - started:.1f}s, {workers} workers", flush=True)
    if args.output_dir:
        out = Path(args.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        result = {
            "worker": index,
            "workers": workers,
            "steps": step,
            "checksum": checksum(model),
            "loss": loss_value,
            "tf_config": json.loads(os.environ.get("TF_CONFIG") or "null"),
            "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
        }
        (out / f"worker{index}.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
