"""Kubernetes quantities ("500m", "2", "4Gi") as numbers, for the few places that need one.

The Kubernetes client has `kubernetes.utils.parse_quantity`, but importing it imports the whole
client package (about 0.2 s, on `tandem run`'s path to the first step, bench B1) for twenty lines
of arithmetic. This is the same function (tests/unit/test_quantity.py compares the two).
"""

from __future__ import annotations

from decimal import Decimal, DecimalException, InvalidOperation

#: Decimal suffixes and their power of 1000 ("K" too, as the Kubernetes client accepts it).
_DECIMAL_SUFFIXES = {"n": -3, "u": -2, "m": -1, "k": 1, "K": 1, "M": 2, "G": 3, "T": 4, "P": 5, "E": 6}
#: Binary suffixes and their power of 1024.
_BINARY_SUFFIXES = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}


def parse_quantity(quantity: str | int | float | Decimal) -> Decimal:
    """The quantity's value (cores for a CPU quantity, bytes for memory); ValueError if invalid."""
    if isinstance(quantity, (int, float, Decimal)):
        return Decimal(quantity)
    text = str(quantity)
    if text[-2:] in _BINARY_SUFFIXES:
        return _scaled(text[:-2], Decimal(1024) ** _BINARY_SUFFIXES[text[-2:]], text)
    if text[-2:-1] in _DECIMAL_SUFFIXES and text[-1:] == "i":  # "ki", "mi": no such binary suffix
        raise ValueError(f"{text} has unknown suffix")
    if text[-1:] in _DECIMAL_SUFFIXES:
        return _scaled(text[:-1], Decimal(1000) ** _DECIMAL_SUFFIXES[text[-1]], text)
    return _number(text, text)


def _scaled(digits: str, factor: Decimal, quantity: str) -> Decimal:
    try:
        return _number(digits, quantity) * factor
    except DecimalException as error:
        raise ValueError(f"Invalid quantity: {quantity}") from error


def _number(digits: str, quantity: str) -> Decimal:
    try:
        return Decimal(digits)
    except InvalidOperation:
        raise ValueError(f"Invalid number format: {quantity}") from None
