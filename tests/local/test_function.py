"""`Client.local().train(func)`: a function, not a script, on two real local workers.

The functions below are shipped as source and JSON (never pickled) and run by each worker under
`python -m tandem.launch -- python -m tandem.launch.function FILE`; each worker writes a hash of
its final weights, and the workers of a data-parallel job must agree on them.
"""

from __future__ import annotations

import json

import pytest

from tandem import Client
from tandem.errors import JobFailed
from tests.support.processes import processes_of_job

pytestmark = pytest.mark.local


def train_ddp(out_dir: str, steps: int, lr: float) -> None:
    """DDP on gloo: different initial weights and data per rank, so only DDP makes them agree."""
    import hashlib
    import json
    import os

    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.manual_seed(rank)
    model = DistributedDataParallel(torch.nn.Linear(8, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    data = torch.Generator().manual_seed(100 + rank)
    for _ in range(steps):
        x = torch.randn(16, 8, generator=data)
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(x), x.sum(1, keepdim=True)).backward()
        optimizer.step()
    digest = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in model.parameters())).hexdigest()
    with open(os.path.join(out_dir, f"worker-{rank}.json"), "w") as out:
        json.dump({"sha256": digest, "world": dist.get_world_size()}, out)
    dist.destroy_process_group()


def train_mwms(out_dir: str, steps: int, lr: float) -> None:
    """Keras under MultiWorkerMirroredStrategy, in a custom loop (model.fit fails multi-worker in
    Keras 3: jobs/train_keras.py says why); different data per worker."""
    import hashlib
    import json
    import os

    import keras
    import numpy as np
    import tensorflow as tf

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    with strategy.scope():
        model = keras.Sequential([keras.Input(shape=(8,)), keras.layers.Dense(1)])
        optimizer = keras.optimizers.SGD(learning_rate=lr)
        optimizer.build(model.trainable_variables)
    x = np.random.default_rng(index).standard_normal((64, 8)).astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices((x, x.sum(1, keepdims=True))).repeat().batch(16)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    batches = iter(strategy.experimental_distribute_dataset(dataset.with_options(options)))

    @tf.function
    def step(batch):
        def replica_step(features, labels):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(model(features, training=True) - labels))
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        strategy.run(replica_step, args=batch)

    for _ in range(steps):
        step(next(batches))
    digest = hashlib.sha256(b"".join(np.ascontiguousarray(w).tobytes() for w in model.get_weights())).hexdigest()
    with open(os.path.join(out_dir, f"worker-{index}.json"), "w") as out:
        json.dump({"sha256": digest, "world": strategy.num_replicas_in_sync}, out)


def fail_on_worker(index: int, code: int) -> None:
    import os
    import sys

    if os.environ["TANDEM_WORKER_INDEX"] == str(index):
        sys.exit(code)


def _agree(out_dir) -> list[dict]:
    workers = [json.loads((out_dir / f"worker-{i}.json").read_text()) for i in (0, 1)]
    assert workers[0]["sha256"] == workers[1]["sha256"]
    assert [w["world"] for w in workers] == [2, 2]
    return workers


def test_a_pytorch_function_on_two_workers_ends_with_identical_weights(tmp_path, job_name):
    out = tmp_path / "out"
    out.mkdir()
    job = Client.local(tmp_path / "runs").train(train_ddp, kwargs={"out_dir": str(out), "steps": 20, "lr": 0.05},
                                                workers=2, framework="pytorch", name=job_name)
    status = job.wait()
    assert status.phase == "Succeeded" and status.restarts == 0
    _agree(out)
    lines = list(job.logs())
    assert {index for index, _ in lines} == {0, 1}
    assert any("tandem.launch.function" in line for _, line in lines)  # the launcher's line names the command
    shipped = list((tmp_path / "runs" / job_name / "functions").glob("*.json"))
    assert [json.loads(p.read_text())["name"] for p in shipped] == ["train_ddp"]
    assert not processes_of_job(job_name)


def test_a_tensorflow_function_on_two_workers_ends_with_identical_weights(tmp_path, job_name):
    out = tmp_path / "out"
    out.mkdir()
    job = Client.local(tmp_path / "runs").train(train_mwms, kwargs={"out_dir": str(out), "steps": 10, "lr": 0.05},
                                                workers=2, framework="tensorflow", name=job_name,
                                                spec={"metrics": {"enabled": False}})
    assert job.wait().phase == "Succeeded"
    _agree(out)
    assert job.metrics() is None  # metrics were off: none, rather than made up


def test_a_failing_worker_is_named_by_wait(tmp_path, job_name):
    job = Client.local(tmp_path / "runs").train(fail_on_worker, kwargs={"index": 1, "code": 7}, workers=2,
                                                name=job_name, spec={"runPolicy": {"backoffLimit": 0},
                                                                     "metrics": {"enabled": False}})
    with pytest.raises(JobFailed, match="worker 1 exited with code 7"):
        job.wait()
