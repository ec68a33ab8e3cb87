"""The frameworks Tandem launches, each one module behind one interface (`base.Framework`).

    from tandem import frameworks
    frameworks.get("tensorflow").default_strategy.name   # "multi-worker-mirrored"

A framework owns everything that differs between frameworks: its strategies, its rules (data
the model checks and the CRD states as CEL), its workers' launch, its image, its TensorBoard
writer. Nothing outside this package compares a framework's name. docs/architecture.md,
"Frameworks", lists what a new one is: a module here, one line below, its Dockerfile and its
example job. Standard library only: the launcher imports it in every worker.
"""

from __future__ import annotations

from . import pytorch, tensorflow
from .base import Contract, Fixed, Framework, Requires, Rule, Strategy, WorkerLaunch
from .registry import (
    IncompleteFramework,
    find,
    frameworks,
    get,
    is_reserved_env,
    names,
    register,
    reserved_env,
    unregister,
)
from .tensorflow import TENSORBOARD_SERVER_IMAGE

#: The built-in frameworks, in the order the docs, the CRD and errors name them.
for _framework in (pytorch.PYTORCH, tensorflow.TENSORFLOW):
    register(_framework)

__all__ = [
    "TENSORBOARD_SERVER_IMAGE", "Contract", "Fixed", "Framework", "IncompleteFramework", "Requires", "Rule",
    "Strategy", "WorkerLaunch", "find", "frameworks", "get", "is_reserved_env", "names", "register",
    "reserved_env", "unregister",
]
