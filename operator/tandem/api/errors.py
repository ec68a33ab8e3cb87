"""Turning pydantic's validation errors into Tandem's SpecError, each with its field path named.

SpecError itself lives in tandem.errors with the rest of Tandem's errors; this module holds
only the pydantic-specific translation.
"""

from __future__ import annotations

from typing import Any, Iterable

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from ..errors import SpecError


class FieldError(ValueError):
    """A model-level check's finding about one field: pydantic places a whole-object validator's
    error at the object, but a check that needs two parts of the document (the name and the
    worker count) still has one field to name and to fix."""

    def __init__(self, loc: tuple[str, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


def field_path(loc: Iterable[Any]) -> str:
    """('spec', 'env', 0, 'name') -> 'spec.env[0].name', as kubectl names fields."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in ("function-after", "function-before") or str(part).startswith("function-"):
            continue
        else:
            path += f".{part}" if path else str(part)
    return path


def _message(error: ErrorDetails) -> str:
    kind, ctx, got = error["type"], error.get("ctx", {}), error.get("input")
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a known field (check the spelling; `kubectl explain trainingjob.spec` lists them)"
    if kind == "greater_than_equal":
        return f"must be >= {ctx['ge']} (got {got!r})"
    if kind == "greater_than":
        return f"must be > {ctx['gt']} (got {got!r})"
    if kind == "less_than":
        return f"must be < {ctx['lt']} (got {got!r})"
    if kind == "less_than_equal":
        return f"must be <= {ctx['le']} (got {got!r})"
    if kind == "literal_error":
        return f"must be one of {ctx['expected']} (got {got!r})"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    return f"{error['msg'][0].lower()}{error['msg'][1:]} (got {got!r})"


def from_validation_error(exc: ValidationError, prefix: Iterable[Any] = ()) -> SpecError:
    problems = []
    for error in exc.errors():
        found = error.get("ctx", {}).get("error")
        loc = (*prefix, *(found.loc if isinstance(found, FieldError) else error["loc"]))
        problems.append((field_path(loc) or "(document)", _message(error)))
    return SpecError(problems)
