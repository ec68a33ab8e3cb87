"""Reading TrainingJob documents from YAML files, and `--set key=value` overrides.

Plain documents only: the model (model.py) validates them, and imports this module, never
the other way round.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import yaml

from ..contract import KIND
from ..errors import SpecError


def parse_override(text: str) -> tuple[list[str], Any]:
    """'spec.workers=4' -> (['spec', 'workers'], 4); the value is read as YAML, so 4 is an int."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise SpecError([("--set", f"{text!r} must look like key=value, e.g. spec.workers=4")])
    parts = key.strip().split(".")
    if parts[0] not in ("metadata", "spec"):
        parts = ["spec", *parts]  # `--set workers=4` is the common case
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return parts, value


def apply_overrides(document: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    for text in overrides:
        parts, value = parse_override(text)
        node = document
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[parts[-1]] = value
    return document


def load_documents(path: str | Path) -> list[dict[str, Any]]:
    """The TrainingJob documents of a YAML file (other kinds in the same file are skipped)."""
    text = Path(path).read_text()
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "(document)"
        raise SpecError([(where, f"is not valid YAML: {getattr(exc, 'problem', exc)}")]) from None
    if not documents:
        raise SpecError([("(document)", "the file holds no TrainingJob")])
    jobs = [d for d in documents if not isinstance(d, dict) or d.get("kind", KIND) == KIND]
    if not jobs:
        raise SpecError([("kind", f"no document of kind {KIND} in the file")])
    return jobs
