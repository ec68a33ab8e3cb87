"""The TrainingJob CustomResourceDefinition, generated from the pydantic model.

Kubernetes wants a *structural* OpenAPI v3.0 schema: no $ref, nullable instead of null types,
boolean exclusive bounds, and free-form objects marked x-kubernetes-preserve-unknown-fields.
This module turns pydantic's JSON Schema into that shape and adds what JSON Schema cannot say:
quantities as int-or-string, list-map keys, CEL rules for the cross-field checks, printer
columns and the status subresource.
"""

from __future__ import annotations

import copy
from typing import Any, Callable

from pydantic import BaseModel

from .. import frameworks
from ..contract import (
    API_GROUP,
    API_VERSION,
    CRD_NAME,
    DNS1035_LABEL_PATTERN,
    KIND,
    MAX_JOB_NAME,
    PLURAL,
    POSITIVE_QUANTITY_PATTERN,
    SINGULAR,
    VERSION,
)
from ..frameworks.rules import Scope, fixed_rules, required_fields
from . import names
from .columns import PRINTER_COLUMNS
from .elastic import ELASTIC_FRAMEWORK
from .model import TrainingJobSpec
from .status import TrainingJobStatus
from .tpu import ACCELERATORS, chips_per_host_options, slice_shape


def _cel_list(values: tuple[str, ...]) -> str:
    """A CEL list literal of strings: ('a', 'b') -> "['a', 'b']"."""
    return "[" + ", ".join(f"'{value}'" for value in values) + "]"


def _or(words: tuple[str, ...]) -> str:
    return " or ".join(words)


def reserved_env_rule() -> str:
    """CEL: the name is none of the reserved env names or prefixes (Tandem's and each framework's)."""
    reserved, prefixes = frameworks.reserved_env()
    starts = [f"self.name.startsWith('{prefix}')" for prefix in prefixes]
    return f"!({' || '.join(starts)} || self.name in {_cel_list(reserved)})"


def strategy_rule() -> dict[str, str]:
    """CEL: the strategy is one of its framework's, as the registry lists them.

    A chain of conditionals, one per framework but the last, which takes the rest (the schema's
    enum already limits framework to the registered ones)."""
    *firsts, last = frameworks.frameworks()
    rule = f"self.strategy in {_cel_list(last.strategy_names)}"
    for framework in reversed(firsts):
        strategies = framework.strategy_names
        allowed = f"self.strategy == '{strategies[0]}'" if len(strategies) == 1 else f"self.strategy in {_cel_list(strategies)}"
        rule = f"self.framework == '{framework.name}' ? {allowed} : {rule}"
    message = ", and ".join(f"{_or(f.strategy_names)} for {f.name}" for f in frameworks.frameworks())
    return {"rule": rule, "message": f"strategy must be {message}", "fieldPath": ".strategy", "reason": "FieldValueInvalid"}


def _cel_scope(scope: Scope) -> str:
    """CEL: the spec is in the scope (the framework, or the framework and the strategy)."""
    if scope.strategy is None:
        return f"self.framework == '{scope.framework}'"
    return f"(self.framework == '{scope.framework}' && self.strategy == '{scope.strategy}')"


def framework_rules() -> list[dict[str, str]]:
    """CEL for the rules the frameworks state as data (tandem.frameworks.rules; the model checks
    the same data): a field a strategy requires is set exactly under it, a fixed field (when
    set) has its value."""
    cel = []
    for field, owners in required_fields().items():
        scopes = [scope for scope, _ in owners]
        within = " || ".join(_cel_scope(scope) for scope in scopes)
        cel.append({
            "rule": f"has(self.{field}) == {within if len(scopes) == 1 else f'({within})'}",
            "message": f"{field} is required with strategy {' or '.join(dict.fromkeys(str(s.strategy) for s in scopes))} "
                       "and allowed only with it",
            "fieldPath": f".{field}", "reason": "FieldValueInvalid",
        })
    for scope, fixed in fixed_rules():
        parts = fixed.field.split(".")
        unset = " || ".join(f"!has(self.{'.'.join(parts[: i + 1])})" for i in range(len(parts)))
        outside = f"!{_cel_scope(scope)}" if scope.strategy else f"self.framework != '{scope.framework}'"
        cel.append({
            "rule": f"{outside} || {unset} || self.{fixed.field} == {fixed.value}",
            "message": f"{fixed.field} must be {fixed.value} {scope.words}",
            "fieldPath": f".{fixed.field}", "reason": "FieldValueInvalid",
        })
    return cel


def job_name_rule() -> dict[str, str]:
    """CEL: metadata.name within the contract's length and pattern (CEL cannot see pydantic's check)."""
    return {
        "rule": f"self.metadata.name.size() <= {MAX_JOB_NAME} && self.metadata.name.matches('{DNS1035_LABEL_PATTERN}')",
        "message": f"metadata.name must be a DNS-1035 label of at most {MAX_JOB_NAME} characters "
        "(it also names the Service and pod hostnames)",
    }


def _cel_string(value: str) -> str:
    """A CEL string literal; raw, as the patterns hold backslashes and no quote."""
    assert "'" not in value, value
    return f"r'{value}'"


def _cel_map(entries: dict[str, str]) -> str:
    """A CEL map literal from keys (quoted here) to CEL expressions."""
    return "{" + ", ".join(f"'{key}': {value}" for key, value in entries.items()) + "}"


def _by_slice(value: Callable[[str, str], str]) -> str:
    """CEL {accelerator: {topology: value}} over tpu.py's table, the one the model reads."""
    return _cel_map({accelerator: _cel_map({topology: value(accelerator, topology) for topology in topologies})
                     for accelerator, (_, topologies) in sorted(ACCELERATORS.items())})


def tpu_rules() -> list[dict[str, str]]:
    """CEL on spec.tpu: the topology is one GKE offers for the accelerator, and chipsPerHost one it
    offers for that slice. Nested map lookups, no string building: the API server estimates the
    cost of concatenation by the longest strings it could meet."""
    topologies = _cel_map({accelerator: _cel_list(tops) for accelerator, (_, tops) in sorted(ACCELERATORS.items())})
    options = _by_slice(lambda accelerator, topology: "{" + ", ".join(
        f"{chips}: true" for chips in chips_per_host_options(accelerator, topology)) + "}")
    return [
        {"rule": f"self.topology in {topologies}[self.accelerator]",
         "message": "topology is not offered for this accelerator (see tpu.accelerator's description)",
         "fieldPath": ".topology", "reason": "FieldValueInvalid"},
        # An unknown topology is the first rule's to report: this one passes it. (Optional lookups
        # of constant maps: a list lookup's cost the API server estimates past its budget.)
        {"rule": f"!has(self.chipsPerHost) || {options}[self.accelerator][?self.topology][?self.chipsPerHost]"
                 f".orValue(!(self.topology in {topologies}[self.accelerator]))",
         "message": "chipsPerHost is not offered for this slice (v5e/v6e 2x4: 4 or 8; otherwise leave it unset)",
         "fieldPath": ".chipsPerHost", "reason": "FieldValueInvalid"},
    ]


def tpu_workers_rule() -> dict[str, str]:
    """CEL: with tpu, workers (when set) is the slice's host count (tpu.slice_shape's)."""
    default_hosts = _by_slice(lambda accelerator, topology: str(slice_shape(accelerator, topology).hosts))
    hosts_by_chips = _by_slice(lambda accelerator, topology: "{" + ", ".join(
        f"{chips}: {slice_shape(accelerator, topology, chips).hosts}"
        for chips in chips_per_host_options(accelerator, topology)) + "}")
    hosts = (f"(has(self.tpu.chipsPerHost) ? {hosts_by_chips}[self.tpu.accelerator][?self.tpu.topology]"
             f"[?self.tpu.chipsPerHost] : {default_hosts}[self.tpu.accelerator][?self.tpu.topology])")
    return {
        # An unknown slice is the tpu rules' to report: orValue lets it pass here.
        "rule": f"!has(self.tpu) || !has(self.workers) || {hosts}.orValue(self.workers) == self.workers",
        "message": "workers must be the host count of the tpu slice (or left unset)",
        "fieldPath": ".workers", "reason": "FieldValueInvalid",
    }


def qualified_keys_rule() -> dict[str, str]:
    """CEL on a label, annotation or node-selector map: every key is a qualified name (JSON Schema
    cannot constrain a map's keys)."""
    return {"rule": f"self.all(key, key.size() <= 317 && key.matches({_cel_string(names.QUALIFIED_KEY_PATTERN)}) && "
                    "(!key.contains('/') || key.indexOf('/') <= 253))",
            "message": "every key must be a qualified name: [prefix/]name, a DNS subdomain prefix of at most 253 "
                       "and a name of at most 63 alphanumerics, '-', '_' or '.'"}


def failure_rule_rules() -> list[dict[str, str]]:
    """CEL on one runPolicy.failurePolicy rule: one matcher, and no exit code 0 with In (the model's
    FailureRule and ExitCodesMatcher say the same)."""
    matchers = " + ".join(f"(has(self.{m}) ? 1 : 0)" for m in ("onExitCodes", "onPodConditions", "onReasons"))
    return [
        {"rule": f"{matchers} == 1", "message": "set exactly one of onExitCodes, onPodConditions and onReasons"},
        {"rule": "!has(self.onExitCodes) || self.onExitCodes.operator != 'In' || !(0 in self.onExitCodes.values)",
         "message": "onExitCodes.values must not contain 0 with operator In: a worker that exits 0 did not fail",
         "fieldPath": ".onExitCodes.values", "reason": "FieldValueInvalid"},
    ]


def failure_rules_unique_names() -> dict[str, str]:
    """CEL on runPolicy.failurePolicy.rules: each name at most once (names are optional, so the
    list cannot be a list-map keyed by name)."""
    return {"rule": "self.all(r, !has(r.name) || self.filter(s, has(s.name) && s.name == r.name).size() == 1)",
            "message": "each failure rule name must be used once"}


def progress_needs_metrics_rule() -> dict[str, str]:
    """CEL on the spec: a progress or startup deadline needs the figures (the model's _metrics_for_deadlines)."""
    deadlines = ("has(self.runPolicy) && (has(self.runPolicy.progressDeadlineSeconds) || "
                 "has(self.runPolicy.startupDeadlineSeconds))")
    return {"rule": f"!({deadlines}) || !has(self.metrics) || !has(self.metrics.enabled) || self.metrics.enabled",
            "message": "metrics.enabled must be true with runPolicy.progressDeadlineSeconds or startupDeadlineSeconds "
                       "(a hang is told from the steps the workers report)",
            "fieldPath": ".metrics.enabled", "reason": "FieldValueInvalid"}


def spec_rules() -> list[dict[str, str]]:
    """The spec's cross-field CEL rules; a function, so that the registry is read when the CRD is
    written, not when this module is imported."""
    return [
        strategy_rule(),
        *framework_rules(),
        tpu_workers_rule(),
        {
            "rule": "!has(self.priorityClassName) || has(self.queueName)",
            "message": "priorityClassName needs queueName: it is Kueue's workload priority (for the pods' "
                       "PriorityClass, use podTemplate.priorityClassName)",
            "fieldPath": ".priorityClassName",
            "reason": "FieldValueInvalid",
        },
        progress_needs_metrics_rule(),
        *elastic_rules(),
    ]


def elastic_rules() -> list[dict[str, str]]:
    """An elastic job's rules (api/elastic.py), in CEL too: `kubectl scale` writes spec.workers
    through the scale subresource, and the API server must refuse a count outside the range."""
    elastic = "!has(self.minWorkers) || "
    return [
        {"rule": "has(self.minWorkers) == has(self.maxWorkers)",
         "message": "an elastic job sets both minWorkers and maxWorkers", "fieldPath": ".maxWorkers",
         "reason": "FieldValueRequired"},
        {"rule": elastic + "!has(self.maxWorkers) || self.minWorkers <= self.maxWorkers",
         "message": "minWorkers must be <= maxWorkers", "fieldPath": ".minWorkers", "reason": "FieldValueInvalid"},
        {"rule": elastic + "!has(self.maxWorkers) || !has(self.workers) || "
                 "(self.workers >= self.minWorkers && self.workers <= self.maxWorkers)",
         "message": "workers must be within minWorkers..maxWorkers (kubectl scale within the range)",
         "fieldPath": ".workers", "reason": "FieldValueInvalid"},
        {"rule": elastic + f"self.framework == '{ELASTIC_FRAMEWORK}'",
         "message": f"minWorkers/maxWorkers (elastic workers) need framework {ELASTIC_FRAMEWORK}: TensorFlow's "
                    "MultiWorkerMirroredStrategy has no elastic mode", "fieldPath": ".minWorkers",
         "reason": "FieldValueInvalid"},
        {"rule": elastic + "!has(self.tpu)",
         "message": "minWorkers/maxWorkers do not apply to a TPU slice, whose host count is fixed",
         "fieldPath": ".minWorkers", "reason": "FieldValueInvalid"},
        {"rule": elastic + "(has(self.runPolicy) && has(self.runPolicy.inPlaceRestarts) && "
                 "self.runPolicy.inPlaceRestarts >= 1)",
         "message": "an elastic job needs runPolicy.inPlaceRestarts >= 1: the workers that remain after one is "
                    "lost restart in place and re-rendezvous without it", "fieldPath": ".runPolicy",
         "reason": "FieldValueInvalid"},
    ]


ROOT_RULES = [job_name_rule()]
CRD_LABELS = {"app.kubernetes.io/name": "tandem", "app.kubernetes.io/part-of": "tandem"}


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
    free_form = node.get("type") == "object" and not node.get("properties") and "additionalProperties" not in node
    if node.get("additionalProperties") is True or free_form:
        node.pop("additionalProperties", None)
        node["x-kubernetes-preserve-unknown-fields"] = True
    for key in ("properties",):
        if key in node:
            node[key] = {name: _resolve(child, defs) for name, child in node[key].items()}
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            node[key] = _resolve(node[key], defs)
    return node


def _structural(model: type[BaseModel], description: str) -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True)
    defs = schema.pop("$defs", {})
    resolved: dict[str, Any] = _resolve(schema, defs)
    resolved["description"] = description
    return resolved


def spec_schema() -> dict[str, Any]:
    spec = _structural(TrainingJobSpec, (TrainingJobSpec.__doc__ or "").strip())
    props = spec["properties"]
    props["framework"]["enum"] = list(frameworks.names())
    props["strategy"]["enum"] = sorted({s for f in frameworks.frameworks() for s in f.strategy_names})
    props["tpu"]["properties"]["accelerator"]["enum"] = sorted(ACCELERATORS)
    props["tpu"]["x-kubernetes-validations"] = tpu_rules()
    for name in ("cpu", "memory"):
        field = props["resources"]["properties"][name]
        field.pop("type", None)
        # pattern checks the string form, minimum the integer form: the model's _quantity says the same.
        field.update({"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}],
                      "pattern": POSITIVE_QUANTITY_PATTERN, "minimum": 1})
    for name in ("labels", "annotations", "nodeSelector"):
        props["podTemplate"]["properties"][name]["x-kubernetes-validations"] = [qualified_keys_rule()]
    env = props["env"]
    env.update({"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]})
    env["items"]["x-kubernetes-validations"] = [
        {"rule": reserved_env_rule(), "message": "TANDEM_* and the variables the launcher derives are reserved",
         "fieldPath": ".name"}
    ]
    rules = props["runPolicy"]["properties"]["failurePolicy"]["properties"]["rules"]
    rules["x-kubernetes-validations"] = [failure_rules_unique_names()]
    rules["items"]["x-kubernetes-validations"] = failure_rule_rules()
    spec["x-kubernetes-validations"] = spec_rules()
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
        "metadata": {"name": CRD_NAME, "labels": CRD_LABELS},
        "spec": {
            "group": API_GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": ["tj"],
                "categories": ["all", "tandem"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    # kubectl scale tj/NAME --replicas=N sets spec.workers (an elastic job resizes
                    # in place; api/elastic.py); the current count is the workers running.
                    "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.workers",
                                                             "statusReplicasPath": ".status.currentWorkers"}},
                    "additionalPrinterColumns": [column.crd() for column in PRINTER_COLUMNS],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "A distributed PyTorch or TensorFlow training job run by Tandem.",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string", "maxLength": 253, "description": f"APIVersion: {API_VERSION}."},
                                "kind": {"type": "string", "maxLength": 63, "description": f"Kind: {KIND}."},
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
