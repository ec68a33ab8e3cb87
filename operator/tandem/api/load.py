"""Reading TrainingJob documents from YAML files, and `--set key=value` overrides.

Plain documents only: the model (model.py) validates them, and imports this module, never
the other way round.

Every YAML a user hands Tandem (a spec file, a `--set` value, `Client.submit(path)`) is parsed by
`SpecLoader`, which refuses aliases: a few hundred bytes of nested aliases expand to gigabytes
once the document is walked (the "billion laughs"), and a TrainingJob has no use for them. The
document itself is capped at MAX_DOCUMENT_BYTES, above what the API server stores for one object.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import yaml

from ..contract import KIND
from ..errors import SpecError

#: The largest spec file read, in bytes: etcd keeps an object to about 1.5 MB, and a real
#: TrainingJob is a few kilobytes.
MAX_DOCUMENT_BYTES = 1024 * 1024

_ALIAS_FIX = "YAML aliases (*name) are not accepted in a TrainingJob; write the value out in full"


class SpecLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses aliases, so that no document can expand past its own size.

    Anchors alone (&name) are harmless and still parse; the alias (*name) that would repeat one
    is refused where it stands, before anything is expanded, so a bomb fails in microseconds.
    """

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]  # types-PyYAML leaves the parser untyped
            raise SpecError([(f"line {event.start_mark.line + 1}", _ALIAS_FIX)])
        return super().compose_node(parent, index)


def parse_yaml(text: str) -> Any:
    """One YAML value (a `--set` value), read by SpecLoader."""
    return yaml.load(text, Loader=SpecLoader)


def read_spec_text(path: str | Path) -> str:
    """The file's text, refused past MAX_DOCUMENT_BYTES before it is read in full."""
    with open(path, "rb") as handle:
        data = handle.read(MAX_DOCUMENT_BYTES + 1)
    if len(data) > MAX_DOCUMENT_BYTES:
        raise SpecError([("(document)", f"is larger than {MAX_DOCUMENT_BYTES} bytes; a TrainingJob is a few kilobytes")])
    return data.decode("utf-8")


def parse_override(text: str) -> tuple[list[str], Any]:
    """'spec.workers=4' -> (['spec', 'workers'], 4); the value is read as YAML, so 4 is an int."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise SpecError([("--set", f"{text!r} must look like key=value, e.g. spec.workers=4")])
    parts = key.strip().split(".")
    if parts[0] not in ("metadata", "spec"):
        parts = ["spec", *parts]  # `--set workers=4` is the common case
    try:
        value = parse_yaml(raw) if raw.strip() else ""
    except SpecError:
        raise SpecError([("--set", f"{key.strip()}: {_ALIAS_FIX}")]) from None
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
    text = read_spec_text(path)
    try:
        documents = [d for d in yaml.load_all(text, Loader=SpecLoader) if d is not None]
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
