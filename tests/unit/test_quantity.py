"""tandem.api.quantity is the Kubernetes client's parse_quantity without importing the client."""

from __future__ import annotations

from decimal import Decimal
from typing import Callable, Union

import pytest
from hypothesis import given, strategies as st
from kubernetes.utils.quantity import parse_quantity as client_parse_quantity

from tandem.api.quantity import parse_quantity

numbers = st.one_of(st.integers(-10**6, 10**6).map(str), st.decimals(allow_nan=False, allow_infinity=False, places=3).map(str),
                    st.sampled_from(["", ".5", "1e3", "1E3", "2e-2", "-", "x", "1.2.3", "NaN", "sNaN", " 1"]))
suffixes = st.sampled_from(["", "n", "u", "m", "k", "K", "M", "G", "T", "P", "E",
                            "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "ki", "mi", "ni", "ui", "i", "x", "Kib"])


def outcome(parse: Callable[[str], Decimal], text: str) -> Union[Decimal, str]:
    try:
        value = parse(text)
    except ValueError:
        return "ValueError"
    return "NaN" if value.is_nan() else value


@given(numbers, suffixes)
def test_same_value_or_refusal_as_the_kubernetes_client(number: str, suffix: str) -> None:
    text = number + suffix
    assert outcome(parse_quantity, text) == outcome(client_parse_quantity, text)


@pytest.mark.parametrize(("text", "value"), [("500m", Decimal("0.5")), ("2", 2), ("4Gi", 4 * 2**30), ("1k", 1000)])
def test_values(text: str, value: Decimal) -> None:
    assert parse_quantity(text) == value
