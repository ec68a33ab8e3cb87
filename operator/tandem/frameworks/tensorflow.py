"""TensorFlow: MultiWorkerMirroredStrategy through TF_CONFIG, or TPUStrategy on a TPU slice.

One TensorFlow process per worker uses all of the worker's devices, so procsPerWorker is 1,
said once here for the model, the CRD and the launcher.
"""

from __future__ import annotations

import json
from typing import Any

from .base import Contract, Fixed, Framework, Strategy, WorkerLaunch
from .tpu import TPU


def tf_config(contract: Contract) -> dict[str, Any]:
    """TF_CONFIG for MultiWorkerMirroredStrategy: every worker in index order, and this task."""
    return {
        "cluster": {"worker": list(contract.worker_hosts)},
        "task": {"type": "worker", "index": contract.worker_index},
    }


def mwms_launch(contract: Contract, command: tuple[str, ...], python: str) -> WorkerLaunch:
    return WorkerLaunch(argv=command, env={"TF_CONFIG": json.dumps(tf_config(contract), separators=(",", ":"))})


MULTI_WORKER_MIRRORED = Strategy(
    name="multi-worker-mirrored",
    launch=mwms_launch,
    needs_hosts=True,
    sets_env=("TF_CONFIG",),
)

TENSORFLOW = Framework(
    name="tensorflow",
    strategies=(MULTI_WORKER_MIRRORED, TPU),
    image="tensorflow-worker",
    extra="tensorflow",
    tensorboard_writer="tandem.metrics.tensorboard:TensorFlowWriter",
    rules=(Fixed("procsPerWorker", 1, reason="one TensorFlow process per worker uses all its devices"),),
)

#: The image TensorBoard's server runs from: TensorFlow's worker image has it (tensorflow
#: depends on tensorboard), so no image is built for it alone.
TENSORBOARD_SERVER_IMAGE = TENSORFLOW.default_image
