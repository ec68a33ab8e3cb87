"""The TrainingJob CustomResourceDefinition, generated from the pydantic model.

Kubernetes wants a *structural* OpenAPI v3.0 schema: no $ref, nullable instead of null types,
boolean exclusive bounds, and free-form objects marked x-kubernetes-preserve-unknown-fields.
This module turns pydantic's JSON Schema into that shape and adds what JSON Schema cannot say:
quantities as int-or-string, list-map keys, CEL rules for the cross-field checks, printer
columns and the status subresource.
"""

from __future__ import annotations

import copy
from typing import Any

from .model import API_GROUP, KIND, STRATEGIES, TrainingJobSpec
from .status import TrainingJobStatus
from .tpu import ACCELERATORS

PLURAL = "trainingjobs"
VERSION = "v1alpha1"

# The pattern Kubernetes' own OpenAPI uses for resource.Quantity.
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)

RESERVED_ENV_RULE = (
    "!(self.name.startsWith('TANDEM_') || self.name.startsWith('TPU_WORKER_') || "
    "self.name in ['TF_CONFIG', 'MASTER_ADDR', 'MASTER_PORT', 'WORLD_SIZE', 'RANK', 'LOCAL_RANK'])"
)

SPEC_RULES = [
    {
        "rule": "self.framework == 'pytorch' ? self.strategy == 'ddp' : self.strategy in ['multi-worker-mirrored', 'tpu']",
        "message": "strategy must be ddp for pytorch, and multi-worker-mirrored or tpu for tensorflow",
        "fieldPath": ".strategy",
        "reason": "FieldValueInvalid",
    },
    {
        "rule": "has(self.tpu) == (self.strategy == 'tpu')",
        "message": "tpu is required with strategy tpu and allowed only with it",
        "fieldPath": ".tpu",
        "reason": "FieldValueInvalid",
    },
    {
        "rule": "self.framework != 'tensorflow' || !has(self.procsPerWorker) || self.procsPerWorker == 1",
        "message": "procsPerWorker must be 1 for tensorflow",
        "fieldPath": ".procsPerWorker",
        "reason": "FieldValueInvalid",
    },
    {
        "rule": "self.strategy != 'tpu' || !has(self.resources) || !has(self.resources.gpus) || self.resources.gpus == 0",
        "message": "resources.gpus must be 0 with strategy tpu",
        "fieldPath": ".resources.gpus",
        "reason": "FieldValueInvalid",
    },
]

ROOT_RULES = [
    {
        "rule": "self.metadata.name.size() <= 52 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
        "message": "metadata.name must be a DNS-1035 label of at most 52 characters (it also names the Service and pod hostnames)",
    },
]

PRINTER_COLUMNS = [
    {"name": "Framework", "type": "string", "jsonPath": ".spec.framework"},
    {"name": "Workers", "type": "integer", "jsonPath": ".spec.workers"},
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Throughput", "type": "number", "jsonPath": ".status.metrics.throughput", "description": "samples/s, all workers"},
    {"name": "Efficiency", "type": "number", "jsonPath": ".status.metrics.scalingEfficiency", "description": "scaling efficiency (1.0 = linear)"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    """Inline $refs and rewrite JSON Schema 2020-12 into structural OpenAPI v3.0."""
    if isinstance(node, list):
        return [_resolve(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    any_of = node.pop("anyOf", None)
    if any_of is not None:
        kinds = [k for k in any_of if k.get("type") != "null"]
        if len(kinds) == 1:
            node = {**kinds[0], **node}
        else:
            node["anyOf"] = kinds
    if "$ref" in node:
        target = copy.deepcopy(defs[node.pop("$ref").split("/")[-1]])
        node = {**target, **node}  # a field's own description wins over the class docstring
    node.pop("title", None)
    if node.get("default") is None:
        node.pop("default", None)
    for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(node.get(bound), (int, float)) and not isinstance(node.get(bound), bool):
            node[plain] = node.pop(bound)
            node[bound] = True
    if "const" in node:
        node["enum"] = [node.pop("const")]
    if node.get("additionalProperties") is False:
        node.pop("additionalProperties")  # structural schemas prune unknown fields instead
    if node.get("additionalProperties") is True or (node.get("type") == "object" and not node.get("properties") and "additionalProperties" not in node):
        node.pop("additionalProperties", None)
        node["x-kubernetes-preserve-unknown-fields"] = True
    for key in ("properties",):
        if key in node:
            node[key] = {name: _resolve(child, defs) for name, child in node[key].items()}
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            node[key] = _resolve(node[key], defs)
    return node


def _structural(model: type, description: str) -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True)
    defs = schema.pop("$defs", {})
    resolved = _resolve(schema, defs)
    resolved["description"] = description
    return resolved


def spec_schema() -> dict[str, Any]:
    spec = _structural(TrainingJobSpec, (TrainingJobSpec.__doc__ or "").strip())
    props = spec["properties"]
    props["strategy"]["enum"] = sorted({s for pair in STRATEGIES.values() for s in pair})
    props["tpu"]["properties"]["accelerator"]["enum"] = sorted(ACCELERATORS)
    props["workers"]["maximum"] = 10000
    for name in ("cpu", "memory"):
        field = props["resources"]["properties"][name]
        field.pop("type", None)
        field.update({"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}], "pattern": QUANTITY_PATTERN})
    env = props["env"]
    env.update({"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]})
    env["items"]["x-kubernetes-validations"] = [
        {"rule": RESERVED_ENV_RULE, "message": "TANDEM_* and the variables the launcher derives are reserved", "fieldPath": ".name"}
    ]
    props["command"]["items"]["maxLength"] = 65536
    spec["x-kubernetes-validations"] = SPEC_RULES
    return spec


def status_schema() -> dict[str, Any]:
    status = _structural(TrainingJobStatus, (TrainingJobStatus.__doc__ or "").strip())
    status["x-kubernetes-preserve-unknown-fields"] = True
    return status


def crd() -> dict[str, Any]:
    """The CustomResourceDefinition object, ready for `kubectl apply`."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{PLURAL}.{API_GROUP}",
            "labels": {"app.kubernetes.io/name": "tandem", "app.kubernetes.io/part-of": "tandem"},
        },
        "spec": {
            "group": API_GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": "trainingjob",
                "shortNames": ["tj"],
                "categories": ["all", "tandem"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "A distributed PyTorch or TensorFlow training job run by Tandem.",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string", "description": "APIVersion: tandem.dev/v1alpha1."},
                                "kind": {"type": "string", "description": "Kind: TrainingJob."},
                                "metadata": {"type": "object"},
                                "spec": spec_schema(),
                                "status": status_schema(),
                            },
                            "x-kubernetes-validations": ROOT_RULES,
                        }
                    },
                }
            ],
        },
    }
