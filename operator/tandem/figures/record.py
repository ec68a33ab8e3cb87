"""The step record: one training step of one rank, as every part carries it. Standard library only.

The reporter makes one `Step` per step in the training process, the shipper checks and posts them,
the gateway checks them again before its Ray collector stores them, and the reader checks them a
third time before the maths (figures/summary.py) and the views read them, by name. On the wire
and in the collector a step is a JSON list of its fields in order; `encode` and `decode` are the
one pair that writes and reads it, so no part decodes a record by position.

Every number is finite and non-negative (`decode` refuses anything else): the records come from
tenant code, and a NaN or a negative count must never reach a sum, a status or a view.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Optional, Sequence


class Step(NamedTuple):
    """One step of one rank. A named tuple, not a dataclass: the training thread makes one per
    step, and a tuple is the cheapest record with named fields."""

    #: When the step ended, on the rank's own clock (seconds since the epoch).
    t: float
    #: Samples the step trained on.
    samples: float
    #: Seconds since the rank's previous step; None for its first (nothing to measure from).
    seconds: Optional[float] = None
    #: The part of `seconds` spent computing rather than waiting for peers; None when not measured.
    busy: Optional[float] = None
    #: Tokens the step trained on (language models); None when the training does not say.
    tokens: Optional[float] = None


#: Fields an encoded step must have (the rest are optional and may be left off its end).
REQUIRED = 2
#: The counts a step carries, each a rate per second wherever rates are drawn (TensorBoard's
#: `tandem/throughput_<count>_per_s`; status.metrics declares its own, api/status.py FIGURES).
COUNTS: tuple[str, ...] = ("samples", "tokens")


def number(value: Any) -> float:
    """`value` as a finite non-negative float; raises ValueError for anything else (a bool, a
    string, NaN, an infinity, a negative number, an integer past float's range)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("not a number")
    try:
        converted = float(value)
    except OverflowError:
        raise ValueError("not a finite non-negative number") from None
    if not math.isfinite(converted) or converted < 0:
        raise ValueError("not a finite non-negative number")
    return converted


def encode(step: Step) -> list[Optional[float]]:
    """The step as a JSON list: its fields in order, unset optional ones left off the end."""
    fields = list(step)
    while len(fields) > REQUIRED and fields[-1] is None:
        fields.pop()
    return fields


def decode(raw: Any) -> Step:
    """A Step from an encoded record; raises ValueError unless it is a list of `REQUIRED` to
    len(Step._fields) numbers, each finite and non-negative (the optional ones may be null)."""
    if not isinstance(raw, (list, tuple)) or not REQUIRED <= len(raw) <= len(Step._fields):
        raise ValueError(f"not a record of {REQUIRED} to {len(Step._fields)} numbers")
    values: list[Any] = [None if value is None and position >= REQUIRED else number(value)
                         for position, value in enumerate(raw)]
    return Step(*values)


def count(steps: Sequence[Step], name: str) -> Optional[float]:
    """The sum of the count `name` over `steps`; None when any step does not carry it (a rate of
    part of the steps would understate)."""
    values = [getattr(step, name) for step in steps]
    if not values or any(value is None for value in values):
        return None
    return float(sum(values))
