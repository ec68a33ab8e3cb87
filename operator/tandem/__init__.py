"""Tandem: one job spec for distributed PyTorch and TensorFlow training.

The same TrainingJob runs on this machine (the default) or on Kubernetes, and reports how
fast it trains and how well it scales while it runs.
"""

__version__ = "0.1.0"
