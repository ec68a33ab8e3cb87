"""The frameworks Tandem launches, by name; a framework with a piece missing is refused here.

Modelled on Kueue's jobframework: each integration registers itself, and registration fails,
naming what is missing, rather than a job finding out on a cluster. The built-in frameworks are
registered when `tandem.frameworks` is imported; `register` is also how a test (or an embedding
program) adds one. Registration order is the order the docs, the CRD and errors name them in.
"""

from __future__ import annotations

import functools
import re
from typing import Optional

from ..contract import RESERVED_ENV_PREFIXES
from .base import Fixed, Framework, Requires, Rule, Strategy

#: A framework or strategy name: it is written into CEL string literals, label values
#: (`<framework>-worker`) and the TANDEM_* contract, so lower-case letters, digits and '-'.
NAME_PATTERN = r"^[a-z]([a-z0-9-]*[a-z0-9])?$"
MAX_NAME = 40
#: An image name component, as the reference grammar allows one (tandem/<image>:<tag>).
IMAGE_PATTERN = r"^[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*$"
#: "module:Class".
WRITER_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$"
#: An environment variable name, or a prefix ending in '*'.
ENV_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*\*?$"
#: A spec field's wire path: camelCase names joined by dots.
FIELD_PATTERN = r"^[a-z][A-Za-z0-9]*(\.[a-z][A-Za-z0-9]*)*$"

_registered: dict[str, Framework] = {}
#: Counts registrations, so that what is derived from the registry (rules.py) is computed once
#: per change rather than once per field validated.
_generation = 0


class IncompleteFramework(ValueError):
    """A framework that cannot be registered: a piece is missing or malformed."""


def register(framework: Framework) -> Framework:
    """Add a framework; raises IncompleteFramework naming every missing or malformed piece."""
    problems = check(framework)
    if problems:
        raise IncompleteFramework(f"framework {getattr(framework, 'name', framework)!r} cannot be registered: "
                                  + "; ".join(problems))
    if _registered.get(framework.name, framework) is not framework:
        raise IncompleteFramework(f"framework {framework.name!r} is registered already")
    _registered[framework.name] = framework
    _changed()
    return framework


def unregister(name: str) -> None:
    if _registered.pop(name, None) is not None:
        _changed()


def _changed() -> None:
    global _generation
    _generation += 1


def generation() -> int:
    """A number that changes whenever a framework is registered or unregistered."""
    return _generation


def find(name: object) -> Optional[Framework]:
    return _registered.get(name) if isinstance(name, str) else None


def get(name: str) -> Framework:
    framework = find(name)
    if framework is None:
        raise KeyError(f"{name!r} is not a framework Tandem launches; use {' or '.join(names())}")
    return framework


def names() -> tuple[str, ...]:
    return tuple(_registered)


def frameworks() -> tuple[Framework, ...]:
    return tuple(_registered.values())


def reserved_env() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(names, prefixes) a user's spec.env may not set: Tandem's own TANDEM_* and what each
    registered strategy's launch sets."""
    return _reserved_env(_generation)


@functools.lru_cache(maxsize=1)
def _reserved_env(generation: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    declared = [entry for framework in frameworks() for s in framework.strategies for entry in s.sets_env]
    prefixes = [*RESERVED_ENV_PREFIXES, *(entry[:-1] for entry in declared if entry.endswith("*"))]
    names_ = [entry for entry in declared if not entry.endswith("*")]
    return tuple(dict.fromkeys(names_)), tuple(dict.fromkeys(prefixes))


def is_reserved_env(name: str) -> bool:
    """Whether Tandem's launcher sets `name` itself, so that a user may not."""
    reserved, prefixes = reserved_env()
    return name in reserved or name.startswith(prefixes)


# --- What registration checks ------------------------------------------------------------------


def check(framework: Framework) -> list[str]:
    """Every missing or malformed piece of a framework, in words that say what to write."""
    if not isinstance(framework, Framework):
        return [f"{type(framework).__name__} is not a tandem.frameworks.Framework"]
    problems = _name("name", framework.name)
    if not re.fullmatch(IMAGE_PATTERN, framework.image or ""):
        problems.append(f"image {framework.image!r} is not the name of an images/<image>.Dockerfile "
                        "(lower-case letters, digits, '-', '.' or '_')")
    if not framework.extra:
        problems.append("extra is missing: the pyproject extra that installs the framework in its image")
    if not re.fullmatch(WRITER_PATTERN, framework.tensorboard_writer or ""):
        problems.append(f"tensorboard_writer {framework.tensorboard_writer!r} is not 'module:Class'")
    if not framework.strategies:
        problems.append("strategies is empty: a framework has at least one strategy")
    seen: set[str] = set()
    for strategy in framework.strategies:
        problems += _strategy(strategy, seen)
    for rule in framework.rules:
        if isinstance(rule, Requires):
            problems.append(f"Requires({rule.field!r}) belongs on a strategy: another strategy of the framework "
                            "may not set the field")
        problems += _rule(rule)
    return problems


def _name(what: str, name: str) -> list[str]:
    if not isinstance(name, str) or not re.fullmatch(NAME_PATTERN, name) or len(name) > MAX_NAME:
        return [f"{what} {name!r} is not a name of lower-case letters, digits and '-' of at most {MAX_NAME}"]
    return []


def _strategy(strategy: Strategy, seen: set[str]) -> list[str]:
    if not isinstance(strategy, Strategy):
        return [f"strategy {strategy!r} is not a tandem.frameworks.Strategy"]
    problems = _name("strategy name", strategy.name)
    if strategy.name in seen:
        problems.append(f"strategy {strategy.name!r} is listed twice")
    seen.add(strategy.name)
    if not callable(strategy.launch):
        problems.append(f"strategy {strategy.name!r}: launch is not a function (contract, command, python) -> "
                        "WorkerLaunch")
    problems += [f"strategy {strategy.name!r}: sets_env entry {entry!r} is not a variable name or PREFIX_*"
                 for entry in strategy.sets_env if not re.fullmatch(ENV_PATTERN, entry)]
    for rule in strategy.rules:
        problems += [f"strategy {strategy.name!r}: {problem}" for problem in _rule(rule)]
    return problems


def _rule(rule: Rule) -> list[str]:
    if not isinstance(rule, (Fixed, Requires)):
        return [f"rule {rule!r} is neither Fixed nor Requires"]
    if not re.fullmatch(FIELD_PATTERN, rule.field):
        return [f"rule field {rule.field!r} is not a spec field's wire path (procsPerWorker, resources.gpus)"]
    if isinstance(rule, Requires) and "." in rule.field:
        return [f"Requires({rule.field!r}): only a top-level spec field can be required"]
    if isinstance(rule, Fixed) and not rule.reason:
        return [f"Fixed({rule.field!r}) has no reason: the error says why the value is fixed"]
    if isinstance(rule, Requires) and not rule.example:
        return [f"Requires({rule.field!r}) has no example: the error shows one when the field is missing"]
    return []
