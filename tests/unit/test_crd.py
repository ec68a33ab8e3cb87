"""The committed CRD is exactly what the model generates, and is a structural schema."""

from __future__ import annotations

import re
from typing import Any, Iterator

from tandem.api.columns import PRINTER_COLUMNS
from tandem.api.crd import crd
from tandem.cli.crd import crd_yaml
from tandem.contract import MAX_WORKERS
from tests.conftest import REPO


def test_committed_crd_matches_the_model():
    committed = (REPO / "manifests" / "crd.yaml").read_text()
    assert committed == crd_yaml(), "manifests/crd.yaml is stale: run `tandem crd > manifests/crd.yaml`"


def _walk(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, schema
    for name, child in schema.get("properties", {}).items():
        yield from _walk(child, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from _walk(schema["items"], f"{path}[]")


def _spec_and_status():
    root = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return root["properties"]["spec"], root["properties"]["status"]


def test_every_field_has_a_description():
    for top in _spec_and_status():
        for path, node in _walk(top):
            if not path.endswith("[]"):
                assert node.get("description"), f"{path or 'root'} has no description"


def test_schema_is_structural():
    for top in _spec_and_status():
        for path, node in _walk(top):
            assert "$ref" not in node and "$defs" not in node, path
            assert node.get("additionalProperties") is not False, path
            assert "type" in node or node.get("x-kubernetes-int-or-string"), f"{path} has no type"
            if "anyOf" in node:
                assert node.get("x-kubernetes-int-or-string"), f"{path}: anyOf only for int-or-string"


def test_the_documented_kubectl_columns_are_the_printer_columns():
    """Every `kubectl get tj` header the README and docs/ show is the one the CRD prints."""
    printed = ["NAME", *(c.name.upper() for c in PRINTER_COLUMNS if not c.priority)]
    shown = [(path.name, line) for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
             for line in path.read_text().splitlines() if re.search(r"\bNAME\s+FRAMEWORK\b", line)]
    assert shown, "no documented `kubectl get tj` header found"
    for name, line in shown:
        header = line[line.index("NAME"):].split()
        assert header == printed, f"{name}: {line.strip()}"


def test_printer_columns_and_names():
    spec = crd()["spec"]
    columns = [c["name"] for c in spec["versions"][0]["additionalPrinterColumns"]]
    assert columns == ["Framework", "Workers", "Current", "World", "Phase", "Queue", "Restarts", "InPlace", "Throughput",
                       "Tokens/s", "Efficiency",
                       "Progress", "ETA", "Age"]
    assert spec["names"]["shortNames"] == ["tj"]
    assert spec["versions"][0]["subresources"] == {
        "status": {}, "scale": {"specReplicasPath": ".spec.workers", "statusReplicasPath": ".status.currentWorkers"}}


def test_cross_field_rules_are_cel():
    spec_schema, _ = _spec_and_status()
    rules = " ".join(r["rule"] for r in spec_schema["x-kubernetes-validations"])
    assert "self.strategy" in rules and "has(self.tpu)" in rules


def _every_node(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node, map values (additionalProperties) included."""
    yield path, schema
    for name, child in schema.get("properties", {}).items():
        yield from _every_node(child, f"{path}.{name}")
    for key, suffix in (("items", "[]"), ("additionalProperties", "{}")):
        if isinstance(schema.get(key), dict):
            yield from _every_node(schema[key], f"{path}{suffix}")


def test_every_list_and_string_a_user_writes_is_bounded():
    """The API server must refuse an oversized TrainingJob before the operator's cache
    holds it. Every array has maxItems, every string maxLength (an enum bounds it already), and
    the worker count is capped at the largest the tests render. (status is written by the
    operator, not the user, and is left to its own schema.)"""
    root = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    user_written = {**root, "properties": {k: v for k, v in root["properties"].items() if k != "status"}}
    unbounded = []
    for path, node in _every_node(user_written):
        if node.get("type") == "array" and "maxItems" not in node:
            unbounded.append(path)
        is_string = node.get("type") == "string" or node.get("x-kubernetes-int-or-string")
        if is_string and "maxLength" not in node and "enum" not in node:
            unbounded.append(path)
    assert unbounded == []
    assert root["properties"]["spec"]["properties"]["workers"]["maximum"] == MAX_WORKERS
