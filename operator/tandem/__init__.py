"""Tandem: one job spec for distributed PyTorch and TensorFlow training.

The same TrainingJob runs on this machine (the default) or on Kubernetes, and reports how
fast it trains and how well it scales while it runs.

    from tandem import Client, TrainingJob
    Client.local().train(func, kwargs={...}, workers=2, framework="pytorch").wait()
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["Client", "JobFailed", "NotShippable", "SpecError", "TrainingJob", "metrics", "preemption"]


def __getattr__(name: str) -> Any:
    # Lazy, so that `python -m tandem.launch` in every worker does not import the k8s client.
    if name == "Client":
        from .sdk import Client

        return Client
    if name in ("JobFailed", "NotShippable"):
        from . import errors

        return getattr(errors, name)
    if name in ("TrainingJob", "SpecError"):
        from . import api

        return getattr(api, name)
    if name in ("metrics", "preemption"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(name)
