"""Executors: where the rendered workers run (this machine, or a Kubernetes cluster)."""
