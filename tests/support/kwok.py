"""Pods and nodes that kwok plays: builders for the cluster tests.

kwok runs no containers; the stages in tests/controlplane/kwok/stages.yaml move a pod to
Running, then to Succeeded after `KWOK_RUN` seconds, or to Failed with the exit code in
`KWOK_EXIT`. A TrainingJob's podTemplate annotations reach every worker pod, so a job's
fate is written into its spec.
"""

from __future__ import annotations

import json
from typing import Any, Optional

from tests.controlplane.cluster import ControlPlane, kwok_node
from tests.support.specs import example

KWOK_RUN = "tandem.dev/kwok-run-seconds"
KWOK_EXIT = "tandem.dev/kwok-exit-code"


def pod_annotations(run_seconds: Optional[float] = None, exit_code: Optional[int] = None) -> dict[str, str]:
    """The annotations that make kwok run a pod `run_seconds` and end it with `exit_code`."""
    annotations = {}
    if exit_code is not None:
        annotations[KWOK_EXIT] = str(exit_code)
    if run_seconds is not None:
        annotations[KWOK_RUN] = str(run_seconds)
    return annotations


def with_pods(document: dict[str, Any], run_seconds: float = 3, exit_code: Optional[int] = None,
              backoff: Optional[int] = None) -> dict[str, Any]:
    """The TrainingJob `document` with worker pods that kwok ends after `run_seconds` (with
    `exit_code`, if given), and runPolicy.backoffLimit set to `backoff` if given."""
    document["spec"]["podTemplate"] = {"annotations": pod_annotations(run_seconds, exit_code)}
    if backoff is not None:
        document["spec"].setdefault("runPolicy", {})["backoffLimit"] = backoff
    return document


def job_document(name: str, workers: Optional[int] = None, run_seconds: float = 3, exit_code: Optional[int] = None,
                 backoff: Optional[int] = None, example_file: str = "mnist-ddp.yaml") -> dict[str, Any]:
    """An example TrainingJob renamed to `name`, with kwok pods as `with_pods` makes them."""
    document = with_pods(example(example_file), run_seconds, exit_code, backoff)
    document["metadata"]["name"] = name
    if workers is not None:
        document["spec"]["workers"] = workers
    return document


TPU_LABELS = {"type": "kwok", "cloud.google.com/gke-tpu-accelerator": "tpu-v5-lite-podslice",
              "cloud.google.com/gke-tpu-topology": "2x4"}
TPU_RESOURCES = {"cpu": "32", "memory": "128Gi", "pods": "110", "google.com/tpu": "4"}
TPU_TAINT = {"key": "google.com/tpu", "value": "present", "effect": "NoSchedule"}


def tpu_node(index: int) -> dict[str, Any]:
    """A kwok TPU v5e host (2x4 slice, 4 chips), tainted as GKE taints TPU node pools."""
    return kwok_node(f"kwok-tpu-v5e-{index}", TPU_LABELS, TPU_RESOURCES, [TPU_TAINT])


def add_tpu_nodes(control_plane: ControlPlane, count: int = 2) -> None:
    items = [tpu_node(i) for i in range(count)]
    control_plane.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
