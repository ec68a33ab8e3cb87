"""The in-worker entrypoint: ``python -m tandem.launch -- <user command>``.

``env`` turns the TANDEM_* contract into the framework's launch (pure), ``process`` runs it
(process group, parent-death signal, signal forwarding, exit code), ``guard`` and ``torchrun``
are the small helpers that make torchrun's workers follow the same rules.
"""

from ..errors import ContractError
from .env import Contract, Launch, build_launch, read_contract

__all__ = ["Contract", "ContractError", "Launch", "build_launch", "read_contract"]
