"""Tiny string grammars (literals, runs of characters from an alphabet, optional groups) that
give both a Hypothesis strategy and a seeded sampler of the same strings.

They stand in for `st.from_regex`, which draws character by character through filters: drawing
the 10,000 hostile documents' names, labels and images that way cost Hypothesis minutes. The
strategy draws each run as one string; the sampler costs no Hypothesis draw at all, for the
parts of a document where Hypothesis' shrinking buys nothing (tests/support/specs.py).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Union

from hypothesis import strategies as st


@dataclass(frozen=True)
class Chars:
    """Between min_size and max_size characters of `alphabet`: a regex's `[...]{min,max}`."""

    alphabet: str
    min_size: int = 1
    max_size: int = 1


@dataclass(frozen=True)
class Maybe:
    """The parts one after the other, or nothing: a regex's `(...)?`."""

    parts: tuple[Part, ...]


Part = Union[str, Chars, Maybe]  # a str is a literal


def maybe(*parts: Part) -> Maybe:
    return Maybe(parts)


def strategy(*parts: Part) -> st.SearchStrategy[str]:
    """The strings of `parts`, as a Hypothesis strategy (few draws: one per run of characters)."""
    return st.tuples(*(_part_strategy(p) for p in parts)).map("".join)


def _part_strategy(part: Part) -> st.SearchStrategy[str]:
    if isinstance(part, str):
        return st.just(part)
    if isinstance(part, Chars):
        return st.text(alphabet=part.alphabet, min_size=part.min_size, max_size=part.max_size)
    return st.one_of(st.just(""), strategy(*part.parts))


def sample(rng: random.Random, *parts: Part) -> str:
    """One string of `parts`, drawn from `rng`; runs are often at their shortest or longest, where
    a rule's limits are."""
    return "".join(_sample_part(rng, p) for p in parts)


def _sample_part(rng: random.Random, part: Part) -> str:
    if isinstance(part, str):
        return part
    if isinstance(part, Chars):
        return "".join(rng.choices(part.alphabet, k=edgy_int(rng, part.min_size, part.max_size)))
    return sample(rng, *part.parts) if rng.random() < 0.5 else ""


def edgy_int(rng: random.Random, low: int, high: int) -> int:
    """An integer in [low, high]: one of the two ends a quarter of the time, as limits are where
    rules most often go wrong."""
    return rng.choice((low, high)) if rng.random() < 0.25 else rng.randint(low, high)
