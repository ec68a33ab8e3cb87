"""The registered frameworks' rules, read two ways: checked on a value (the model, the launcher)
and listed with where each holds (api/crd.py writes them as CEL). One set of words for all three,
so the API server, the model and the worker refuse a spec in the same terms.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from . import registry
from .base import Fixed, Requires, Rule


@dataclass(frozen=True)
class Scope:
    """Where a rule holds: every strategy of a framework, or one strategy of it."""

    framework: str
    strategy: Optional[str] = None

    @property
    def words(self) -> str:
        return f"for {self.framework}" if self.strategy is None else f"with strategy {self.strategy}"

    def holds(self, framework: str, strategy: Optional[str]) -> bool:
        return self.framework == framework and self.strategy in (None, strategy)


@dataclass(frozen=True)
class _Index:
    """The registry's rules, sorted the ways they are read."""

    scoped: tuple[tuple[Scope, Rule], ...]
    fixed: tuple[tuple[Scope, Fixed], ...]
    #: Each field some strategy requires -> the strategies that require it (and so may set it).
    required: Mapping[str, tuple[tuple[Scope, Requires], ...]]
    #: The top-level spec fields some rule is about.
    fields: frozenset[str]


@functools.lru_cache(maxsize=1)
def _index(generation: int) -> _Index:
    scoped: list[tuple[Scope, Rule]] = []
    for framework in registry.frameworks():
        scoped += [(Scope(framework.name), rule) for rule in framework.rules]
        for strategy in framework.strategies:
            scoped += [(Scope(framework.name, strategy.name), rule) for rule in strategy.rules]
    required: dict[str, list[tuple[Scope, Requires]]] = {}
    for scope, rule in scoped:
        if isinstance(rule, Requires):
            required.setdefault(rule.field, []).append((scope, rule))
    return _Index(
        scoped=tuple(scoped),
        fixed=tuple((scope, rule) for scope, rule in scoped if isinstance(rule, Fixed)),
        required={field: tuple(owners) for field, owners in required.items()},
        fields=frozenset(rule.field.partition(".")[0] for _, rule in scoped),
    )


def _rules() -> _Index:
    """The index of the registry as it is now (computed once per registration)."""
    return _index(registry.generation())


def scoped_rules() -> tuple[tuple[Scope, Rule], ...]:
    """Every rule of every registered framework with where it holds, in registration order."""
    return _rules().scoped


def fixed_rules() -> tuple[tuple[Scope, Fixed], ...]:
    return _rules().fixed


def required_fields() -> Mapping[str, tuple[tuple[Scope, Requires], ...]]:
    """Each field some strategy requires -> the strategies that require it (and so may set it)."""
    return _rules().required


def fields() -> frozenset[str]:
    """The top-level spec fields some rule is about."""
    return _rules().fields


def _or(words: list[str]) -> str:
    return " or ".join(dict.fromkeys(words))


def check(framework: str, strategy: Optional[str], field: str, value: Any) -> Optional[str]:
    """The first rule the top-level spec field `field` breaks under this framework and strategy,
    as a message about the field; None when it breaks none. `value` is in wire form (a nested
    object as a mapping of camelCase names); None is an unset field. A strategy not known yet
    (None) leaves its rules unchecked: the strategy's own error comes first."""
    for scope, rule in fixed_rules():
        head, _, rest = rule.field.partition(".")
        if head != field or not scope.holds(framework, strategy):
            continue
        actual = _dig(value, rest)
        if rule.broken_by(actual):
            return f"{rest + ' ' if rest else ''}must be {rule.value} {scope.words}: {rule.reason}"
    owners = required_fields().get(field, ())
    if owners and strategy is not None:
        mine = [rule for scope, rule in owners if scope.framework == framework and scope.strategy == strategy]
        if mine and value is None:
            return f"is required with strategy {strategy} (e.g. {mine[0].example})"
        if not mine and value is not None:
            allowed = _or([str(scope.strategy) for scope, _ in owners])
            return f"is only allowed with strategy {allowed} (strategy is {strategy!r})"
    return None


def _dig(value: Any, path: str) -> Any:
    for name in filter(None, path.split(".")):
        value = value.get(name) if isinstance(value, Mapping) else None
    return value
