"""The in-worker entrypoint: ``python -m tandem.launch -- <user command>``.

``env`` turns the TANDEM_* contract into the framework's launch (pure), ``process`` runs it
(process group, parent-death signal, signal forwarding, exit code), ``guard`` and ``torchrun``
are the small helpers that make torchrun's workers follow the same rules.

The names below are imported on first use: ``python -m tandem.launch.guard`` starts in front of
every torchrun worker, and needs none of ``env``: each import there delays
every worker's first step.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..errors import ContractError
    from .env import Contract, Launch, build_launch, read_contract

__all__ = ["Contract", "ContractError", "Launch", "build_launch", "read_contract"]


def __getattr__(name: str) -> Any:
    if name == "ContractError":
        return importlib.import_module("..errors", __name__).ContractError
    if name in __all__:
        return getattr(importlib.import_module(".env", __name__), name)
    raise AttributeError(name)
